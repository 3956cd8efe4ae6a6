<?php
// bootstrap.php - the smtpfault package from composer's vendor/autoload.php when there is one (composer
// install), else from this repository's clients/php; then the application code.
declare(strict_types=1);

$autoload = __DIR__ . '/vendor/autoload.php';
require file_exists($autoload) ? $autoload : __DIR__ . '/../../clients/php/autoload.php';
require __DIR__ . '/send_welcome.php';
