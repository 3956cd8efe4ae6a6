<?php
/*
 * phpmailer-send.php - send mail with Debian's PHPMailer over plain SMTP and print what PHPMailer reports.
 *
 * Input: one JSON object, as the first argument or on stdin:
 *   {
 *     "host": "127.0.0.1", "port": 2525,
 *     "exceptions": true,             new PHPMailer(true): failures throw
 *     "keepAlive": false,             SMTPKeepAlive: every message over one connection
 *     "messages": [{                  sent in order, one PHPMailer object reused
 *        "from": "a@example.com", "sender": "bounce@example.com" (optional),
 *        "to": ["b@example.com"], "cc": [], "bcc": [],
 *        "subject": "...", "body": "...", "altBody": "...", "isHTML": false,
 *        "charset": "utf-8", "encoding": "8bit",
 *        "attachments": [{"name": "x.bin", "contentBase64": "...", "type": "application/octet-stream"}]
 *     }]
 *   }
 *
 * Output: one JSON line on stdout:
 *   {"results": [{"ok": bool, "returned": bool|null, "exception": null|{"class","message","code"},
 *                 "errorInfo": "...", "messageId": "...", "lastReply": "...", "transactionId": ...}],
 *    "debug": [PHPMailer's SMTP transcript lines]}
 * The exit code is 0 whenever the JSON was printed, 2 for bad input.
 */
require '/usr/share/php/libphp-phpmailer/autoload.php';

use PHPMailer\PHPMailer\PHPMailer;
use PHPMailer\PHPMailer\SMTP;

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
$mail->SMTPAutoTLS = false; // no STARTTLS yet
$mail->SMTPSecure = '';
$mail->Timeout = 20;
$mail->SMTPKeepAlive = !empty($input['keepAlive']);
$mail->SMTPDebug = SMTP::DEBUG_SERVER; // client and server lines, kept below
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
    $results[] = $result;
}
if ($mail->SMTPKeepAlive) {
    $mail->smtpClose();
}

echo json_encode(['results' => $results, 'debug' => $debug], JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE), "\n";
exit(0);
