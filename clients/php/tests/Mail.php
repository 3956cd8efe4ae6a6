<?php
declare(strict_types=1);

namespace Smtpfault\Tests;

use PHPMailer\PHPMailer\PHPMailer;
use Smtpfault\Listener;

/** Mail - what the tests send, with PHPMailer over STARTTLS, the server verified against a CA file. */
final class Mail
{
    public const IO_TIMEOUT = 30; // seconds for one SMTP exchange with a server under ASan on a loaded machine

    /** send - one message through $listener; PHPMailer's exception when it fails */
    public static function send(Listener $listener, string $caFile, string $to, string $subject = 'Welcome'): void
    {
        $mail = new PHPMailer(true);
        $mail->isSMTP();
        $mail->Host = $listener->host;
        $mail->Port = $listener->port;
        $mail->SMTPSecure = PHPMailer::ENCRYPTION_STARTTLS;
        $mail->SMTPAutoTLS = false;
        $mail->Timeout = self::IO_TIMEOUT;
        $mail->getSMTPInstance()->Timelimit = self::IO_TIMEOUT;
        $mail->SMTPOptions = ['ssl' => ['cafile' => $caFile, 'verify_peer' => true, 'verify_peer_name' => true]];
        $mail->setFrom('app@example.com');
        $mail->addAddress($to);
        $mail->Subject = $subject;
        $mail->Body = 'Hello!';
        $mail->send();
    }
}
