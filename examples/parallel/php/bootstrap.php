<?php
// bootstrap.php - the smtpfault package and PHPMailer from composer's vendor/autoload.php when there is one
// (composer install), else from this repository's clients/php and Debian's libphp-phpmailer.
declare(strict_types=1);

$autoload = __DIR__ . '/vendor/autoload.php';
if (file_exists($autoload)) {
    require $autoload;
} else {
    require __DIR__ . '/../../../clients/php/autoload.php';
    require '/usr/share/php/libphp-phpmailer/autoload.php';
}
