<?php
/*
 * send_welcome.php - the part of an application that sends mail, with PHPMailer.
 *
 * send_welcome($to, $config) sends one message over STARTTLS. Temporary failures (4xx replies, connections
 * that fail) are retried a few times with a pause; a refused login (535) is not retried but reported as a
 * configuration problem; other permanent refusals (5xx) are reported as they are. Every failure is thrown as
 * a MailError with a kind the rest of the application can act on.
 *
 * PHPMailer's messages hide most causes ("SMTP connect() failed", "Could not connect to SMTP host"), so the
 * server's replies are taken from its debug output, which is also what to log when mail fails.
 */

use PHPMailer\PHPMailer\Exception as PHPMailerException;
use PHPMailer\PHPMailer\PHPMailer;
use PHPMailer\PHPMailer\SMTP;

$autoload = __DIR__ . '/vendor/autoload.php'; // composer require phpmailer/phpmailer
require file_exists($autoload) ? $autoload : '/usr/share/php/libphp-phpmailer/autoload.php'; // or Debian's

class MailError extends RuntimeException
{
    const USER_MESSAGES = [
        'auth' => 'The mail server refused our login: check the SMTP user name and password.',
        'temporary' => 'The mail server is not accepting mail right now; the message will be sent later.',
        'rejected' => 'The mail server refused the message.',
    ];

    public $kind;       // 'auth', 'temporary' or 'rejected'
    public $attempts;
    public $reply;      // the server's last error reply, or null when there was none
    public $userMessage;

    public function __construct($kind, $attempts, $reply, $detail)
    {
        parent::__construct(self::USER_MESSAGES[$kind] . " ($detail)");
        $this->kind = $kind;
        $this->attempts = $attempts;
        $this->reply = $reply;
        $this->userMessage = self::USER_MESSAGES[$kind];
    }
}

/* the last error reply (4xx or 5xx) in PHPMailer's debug lines, or null */
function last_error_reply(array $debug)
{
    $reply = null;
    foreach ($debug as $line) {
        if (preg_match('/^SERVER -> CLIENT: ([45]\d\d)[ -](.*)/s', $line, $m)) {
            $reply = ['code' => (int)$m[1], 'text' => trim($m[0])];
        }
    }
    return $reply;
}

function classify($reply, $message)
{
    if (($reply && ($reply['code'] === 535 || $reply['code'] === 534)) || strpos($message, 'authenticate') !== false) {
        return 'auth';
    }
    if ($reply === null || ($reply['code'] >= 400 && $reply['code'] < 500)) {
        return 'temporary'; // no reply at all: the connection failed, was reset or timed out
    }
    return 'rejected';
}

/*
 * $config: host, port, user, pass, cafile (to verify the server's certificate), from, attempts (3),
 * retry_delay_ms (1000), timeout (10 s; PHPMailer's Timeout and SMTP::$Timelimit). Returns the attempts.
 */
function send_welcome($to, array $config)
{
    $attempts = $config['attempts'] ?? 3;
    for ($attempt = 1; ; $attempt++) {
        $debug = [];
        $mail = new PHPMailer(true);
        $mail->isSMTP();
        $mail->Host = $config['host'];
        $mail->Port = $config['port'];
        $mail->SMTPSecure = PHPMailer::ENCRYPTION_STARTTLS;
        $mail->Timeout = $config['timeout'] ?? 10;
        $mail->getSMTPInstance()->Timelimit = $config['timeout'] ?? 10;
        if (!empty($config['cafile'])) {
            $mail->SMTPOptions = ['ssl' => ['cafile' => $config['cafile'], 'verify_peer' => true,
                                            'verify_peer_name' => true, 'peer_name' => 'localhost']];
        }
        if (!empty($config['user'])) {
            $mail->SMTPAuth = true;
            $mail->Username = $config['user'];
            $mail->Password = $config['pass'];
        }
        $mail->SMTPDebug = SMTP::DEBUG_SERVER;
        $mail->Debugoutput = function ($line) use (&$debug) {
            $debug[] = rtrim($line);
        };
        try {
            $mail->setFrom($config['from'] ?? 'app@example.com');
            $mail->addAddress($to);
            $mail->Subject = 'Welcome!';
            $mail->Body = 'Thanks for signing up.';
            $mail->send();
            return $attempt;
        } catch (PHPMailerException $e) {
            $reply = last_error_reply($debug);
            $kind = classify($reply, $e->getMessage());
            if ($kind !== 'temporary' || $attempt >= $attempts) {
                throw new MailError($kind, $attempt, $reply ? $reply['text'] : null, $e->getMessage());
            }
            usleep(($config['retry_delay_ms'] ?? 1000) * 1000);
        }
    }
}
