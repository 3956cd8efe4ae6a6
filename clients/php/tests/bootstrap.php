<?php
// bootstrap.php - the package from this source tree (its own autoload.php, no composer), PHPMailer from
// Debian's libphp-phpmailer, and the binary under test: $SMTPFAULT_BIN, else build/smtpfault of this repository.
declare(strict_types=1);

require __DIR__ . '/../autoload.php';
require '/usr/share/php/libphp-phpmailer/autoload.php';
require __DIR__ . '/Mail.php';
require __DIR__ . '/ExpectError.php';

if (!getenv('SMTPFAULT_BIN') && is_file(__DIR__ . '/../../../build/smtpfault')) {
    putenv('SMTPFAULT_BIN=' . realpath(__DIR__ . '/../../../build/smtpfault'));
}
putenv('SMTPFAULT_ADMIN'); // the shared server is one the suite starts
