<?php
declare(strict_types=1);

namespace Smtpfault;

/** A client.report assertion that failed outside PHPUnit (under PHPUnit, its own failure is thrown instead). */
final class ClientAssertionError extends \AssertionError
{
}
