<?php
/*
 * phpmailer-send.php - send mail with Debian's PHPMailer and print what PHPMailer reports.
 *
 * Input: one JSON object, as the first argument or on stdin:
 *   {
 *     "host": "127.0.0.1", "port": 2525,
 *     "exceptions": true,             new PHPMailer(true): failures throw
 *     "keepAlive": false,             SMTPKeepAlive: every message over one connection
 *     "secure": "" | "ssl" | "tls",   SMTPSecure: implicit TLS ("ssl") or STARTTLS ("tls"); default none
 *     "autoTLS": false,               SMTPAutoTLS: STARTTLS when offered (default off)
 *     "timeout": 20,                  Timeout in seconds (connect and each read; not the wait for a reply)
 *     "timelimit": 300,               SMTP::Timelimit in seconds: how long PHPMailer waits for a reply
 *                                     (for the greeting too); PHPMailer's default is 300
 *     "debugLevel": 2,                SMTPDebug: 2 (DEBUG_SERVER, default) or 3 (DEBUG_CONNECTION, which adds
 *                                     the connection errors PHP reported, e.g. OpenSSL's)
 *     "ssl": {"cafile": "...", "verify_peer": true, "verify_peer_name": true, "peer_name": "localhost",
 *             "allow_self_signed": false},   SMTPOptions['ssl'], as PHP stream context options
 *     "auth": {"user": "...", "password": "...", "type": "PLAIN"|"LOGIN"|"CRAM-MD5"|"XOAUTH2"|""},
 *                                     SMTPAuth on; for XOAUTH2 the password is the access token
 *     "messages": [{                  sent in order, one PHPMailer object reused
 *        "from": "a@example.com", "sender": "bounce@example.com" (optional),
 *        "to": ["b@example.com"], "cc": [], "bcc": [],
 *        "subject": "...", "body": "...", "altBody": "...", "isHTML": false,
 *        "charset": "utf-8", "encoding": "8bit",   another charset: the strings above (JSON's UTF-8) are
 *                                     converted into it first, as an application in that charset holds them
 *        "attachments": [{"name": "x.bin", "contentBase64": "...", "type": "application/octet-stream"}]
 *     }]
 *   }
 *
 * Output: one JSON line on stdout:
 *   {"results": [{"ok": bool, "returned": bool|null, "exception": null|{"class","message","code"},
 *                 "errorInfo": "...", "messageId": "...", "lastReply": "...", "transactionId": ...,
 *                 "smtpError": SMTP::getError(): {"error", "detail", "smtp_code", "smtp_code_ex"}}],
 *    "debug": [PHPMailer's SMTP transcript lines]}
 * The exit code is 0 whenever the JSON was printed, 2 for bad input.
 */
require '/usr/share/php/libphp-phpmailer/autoload.php';

use PHPMailer\PHPMailer\OAuthTokenProvider;
use PHPMailer\PHPMailer\PHPMailer;
use PHPMailer\PHPMailer\SMTP;

/* A fixed bearer token for XOAUTH2: PHPMailer asks a provider object for the SASL string. */
class StaticToken implements OAuthTokenProvider
{
    private $user;
    private $token;

    public function __construct($user, $token)
    {
        $this->user = $user;
        $this->token = $token;
    }

    public function getOauth64()
    {
        return base64_encode("user=" . $this->user . "\001auth=Bearer " . $this->token . "\001\001");
    }
}

$raw = $argc > 1 ? $argv[1] : stream_get_contents(STDIN);
$input = json_decode($raw, true);
if (!is_array($input) || !isset($input['host'], $input['port'], $input['messages']) || !is_array($input['messages'])) {
    fwrite(STDERR, "phpmailer-send: need a JSON object with host, port and messages\n");
    exit(2);
}

$exceptions = !empty($input['exceptions']);
$debug = [];
$mail = new PHPMailer($exceptions);
$mail->isSMTP();
$mail->Host = $input['host'];
$mail->Port = (int)$input['port'];
$mail->SMTPAuth = false;
$mail->SMTPAutoTLS = !empty($input['autoTLS']);
$mail->SMTPSecure = $input['secure'] ?? '';
$mail->Timeout = (int)($input['timeout'] ?? 20);
if (isset($input['timelimit'])) {
    $mail->getSMTPInstance()->Timelimit = (int)$input['timelimit'];
}
if (isset($input['ssl']) && is_array($input['ssl'])) {
    $mail->SMTPOptions = ['ssl' => $input['ssl']];
}
if (isset($input['auth']) && is_array($input['auth'])) {
    $mail->SMTPAuth = true;
    $mail->Username = $input['auth']['user'] ?? '';
    $mail->Password = $input['auth']['password'] ?? '';
    $mail->AuthType = $input['auth']['type'] ?? '';
    if ($mail->AuthType === 'XOAUTH2') {
        $mail->setOAuth(new StaticToken($mail->Username, $mail->Password));
    }
}
$mail->SMTPKeepAlive = !empty($input['keepAlive']);
$mail->SMTPDebug = (int)($input['debugLevel'] ?? SMTP::DEBUG_SERVER); // client and server lines, kept below
$mail->Debugoutput = function ($line, $level) use (&$debug) {
    $debug[] = rtrim($line, "\r\n");
};

$results = [];
foreach ($input['messages'] as $m) {
    $result = ['ok' => false, 'returned' => null, 'exception' => null, 'errorInfo' => '', 'messageId' => null,
               'lastReply' => null, 'transactionId' => null];
    try {
        $mail->clearAllRecipients();
        $mail->clearAttachments();
        $mail->clearCustomHeaders();
        $mail->ErrorInfo = '';
        $mail->CharSet = $m['charset'] ?? PHPMailer::CHARSET_UTF8;
        if (strcasecmp($mail->CharSet, PHPMailer::CHARSET_UTF8) !== 0) {
            foreach (['fromName', 'subject', 'body', 'altBody'] as $k) {
                if (isset($m[$k])) {
                    $m[$k] = iconv('UTF-8', $mail->CharSet, $m[$k]);
                }
            }
        }
        if (isset($m['encoding'])) {
            $mail->Encoding = $m['encoding'];
        }
        $mail->setFrom($m['from'], $m['fromName'] ?? '', false);
        $mail->Sender = $m['sender'] ?? '';
        foreach ($m['to'] ?? [] as $a) {
            $mail->addAddress($a);
        }
        foreach ($m['cc'] ?? [] as $a) {
            $mail->addCC($a);
        }
        foreach ($m['bcc'] ?? [] as $a) {
            $mail->addBCC($a);
        }
        $mail->Subject = $m['subject'] ?? '';
        $mail->isHTML(!empty($m['isHTML']));
        $mail->Body = $m['body'] ?? '';
        $mail->AltBody = $m['altBody'] ?? '';
        foreach ($m['attachments'] ?? [] as $att) {
            $mail->addStringAttachment(base64_decode($att['contentBase64']), $att['name'], PHPMailer::ENCODING_BASE64,
                                       $att['type'] ?? '');
        }
        $result['returned'] = $mail->send();
        $result['ok'] = $result['returned'] === true;
    } catch (Throwable $e) {
        $result['exception'] = ['class' => get_class($e), 'message' => $e->getMessage(), 'code' => $e->getCode()];
    }
    $result['errorInfo'] = $mail->ErrorInfo;
    $result['messageId'] = $mail->getLastMessageID();
    $smtp = $mail->getSMTPInstance();
    $result['lastReply'] = rtrim($smtp->getLastReply(), "\r\n");
    $result['transactionId'] = $smtp->getLastTransactionID();
    $result['smtpError'] = $smtp->getError();
    $results[] = $result;
}
if ($mail->SMTPKeepAlive) {
    $mail->smtpClose();
}

echo json_encode(['results' => $results, 'debug' => $debug], JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE), "\n";
exit(0);
