<?php
declare(strict_types=1);

namespace Smtpfault\PHPUnit;

use Smtpfault\Client;

/**
 * The server a PHPUnit process shares between its tests: the one at $SMTPFAULT_ADMIN (with
 * $SMTPFAULT_ADMIN_TOKEN) when set, else one started from $SMTPFAULT_BIN or PATH on first use and stopped
 * when the process exits. Each process (a paratest worker) has its own.
 */
final class SharedServer
{
    private static ?Client $client = null;

    public static function client(): Client
    {
        if (self::$client === null) {
            $admin = getenv('SMTPFAULT_ADMIN') ?: null;
            $token = getenv('SMTPFAULT_ADMIN_TOKEN') ?: null;
            self::$client = $admin !== null ? Client::connect($admin, $token) : Client::start(token: $token);
            register_shutdown_function([self::class, 'close']);
        }
        return self::$client;
    }

    public static function close(): void
    {
        $client = self::$client;
        self::$client = null;
        $client?->close();
    }
}
