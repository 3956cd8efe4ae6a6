<?php
declare(strict_types=1);

namespace Smtpfault;

/**
 * An error of the admin socket, with its code as in docs/admin.md (not_found, bad_argument, invalid_profile,
 * timeout, unauthorized, ...), or of this package: disconnected (the admin socket cannot be reached or
 * closed), start_failed and server_failed (Client::start() and close() of a spawned server).
 */
final class SmtpfaultException extends \RuntimeException
{
    /** @param list<string> $errors invalid_profile: every error of the profile, each naming its JSON path */
    public function __construct(
        public readonly string $errorCode,
        public readonly string $detail,
        public readonly array $errors = [],
    ) {
        parent::__construct("$errorCode: $detail");
    }
}
