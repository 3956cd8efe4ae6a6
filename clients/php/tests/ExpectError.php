<?php
declare(strict_types=1);

namespace Smtpfault\Tests;

use Smtpfault\SmtpfaultException;

/** ExpectError - error($f): the SmtpfaultException $f throws, or a failure when it throws none. */
trait ExpectError
{
    private static function error(callable $f): SmtpfaultException
    {
        try {
            $f();
        } catch (SmtpfaultException $e) {
            return $e;
        }
        self::fail('expected a SmtpfaultException');
    }
}
