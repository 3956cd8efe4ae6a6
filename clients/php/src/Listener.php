<?php
declare(strict_types=1);

namespace Smtpfault;

/** An SMTP listener: where a mail client connects. */
final class Listener
{
    public function __construct(
        public readonly string $host,
        public readonly int $port,
        public readonly string $address,
    ) {
    }

    /** @param array{address: string, host?: string, port?: int}|null $value */
    public static function from(?array $value): ?self
    {
        if (!$value) {
            return null;
        }
        $i = strrpos($value['address'], ':');
        return new self($value['host'] ?? trim(substr($value['address'], 0, $i), '[]'),
                        (int)($value['port'] ?? substr($value['address'], $i + 1)), $value['address']);
    }
}
