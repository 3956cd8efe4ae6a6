<?php
// autoload.php - the package's PSR-4 autoloader without composer: require this file, then use Smtpfault\...
declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    $prefix = 'Smtpfault\\';
    if (strncmp($class, $prefix, strlen($prefix)) === 0) {
        $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
