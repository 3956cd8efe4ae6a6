<?php
declare(strict_types=1);

namespace Smtpfault\Tests;

use PHPUnit\Framework\AssertionFailedError;
use PHPUnit\Framework\TestCase;
use Smtpfault\Listener;
use Smtpfault\PHPUnit\SmtpfaultScope;
use Smtpfault\PHPUnit\SharedServer;
use Smtpfault\Report;

/**
 * client.report through the package (issue 18): report() on a scope and on the server, and assertClient, the
 * one call that checks what the code under test did after a 4xx and a 5xx, failing with its timeline. The
 * code under test is a small SMTP client on a stream socket, scripted here; delays are only bounded below.
 */
final class ReportTest extends TestCase
{
    use SmtpfaultScope;

    private const PROFILE = ['rules' => [
        ['when' => ['stage' => 'rcpt', 'rcpt' => 'later@*', 'times' => 3],
         'do' => ['reply' => '421 4.3.2 Busy, try again later']],
        ['when' => ['stage' => 'rcpt', 'rcpt' => 'nobody@*'], 'do' => ['reply' => '550 5.1.1 No such user']]]];
    private const BACKOFF_MS = [100, 300, 700]; // each longer than the last by far more than a loaded machine's jitter

    protected function smtpfaultScopeOptions(): array
    {
        return ['profile' => self::PROFILE, 'listeners' => ['smtp']];
    }

    /** say - send a line (CRLF added unless $raw) and read the reply: its code */
    private static function say($socket, string $line, bool $raw = false): int
    {
        fwrite($socket, $raw ? $line : "$line\r\n");
        return self::reply($socket);
    }

    private static function reply($socket): int
    {
        do {
            $line = fgets($socket);
            self::assertIsString($line, 'the server closed or went quiet');
        } while ($line[3] === '-');
        return (int)substr($line, 0, 3);
    }

    private static function connect(Listener $l)
    {
        $socket = stream_socket_client("tcp://{$l->address}", $errno, $errstr, Mail::IO_TIMEOUT);
        self::assertNotFalse($socket, $errstr);
        stream_set_timeout($socket, Mail::IO_TIMEOUT);
        self::assertSame(220, self::reply($socket));
        return $socket;
    }

    /** send - one message on a new connection: 250, or the code that refused it (QUIT unless 421) */
    private static function send(Listener $l, string $rcpt): int
    {
        $s = self::connect($l);
        try {
            self::assertSame(250, self::say($s, 'EHLO app.example.org'));
            self::assertSame(250, self::say($s, 'MAIL FROM:<app@example.org>'));
            $code = self::say($s, "RCPT TO:<$rcpt>");
            if ($code === 250) {
                self::assertSame(354, self::say($s, 'DATA'));
                $code = self::say($s, "To: $rcpt\r\nSubject: story\r\n\r\nhello\r\n.");
            }
            if ($code !== 421) { // a 421 closes the session
                self::say($s, 'QUIT');
            }
            return $code;
        } finally {
            fclose($s);
        }
    }

    private function failure(callable $f): string
    {
        try {
            $f();
        } catch (AssertionFailedError $e) {
            return $e->getMessage();
        }
        $this->fail('expected the assertion to fail');
    }

    public function testRetriedThe421WithBackoffAndGaveUpOnThe550(): void
    {
        $smtp = $this->scope()->smtp;
        $codes = [self::send($smtp, 'later@example.com')];
        foreach (self::BACKOFF_MS as $wait) {
            usleep($wait * 1000);
            $codes[] = self::send($smtp, 'later@example.com');
        }
        $codes[] = self::send($smtp, 'nobody@example.com');
        $this->assertSame([421, 421, 421, 250, 550], $codes);

        $this->scope()->assertClient(retried4xx: ['atLeast' => 3, 'backoff' => true], retried5xx: false,
            gaveUpAfter5xx: true, violations: 0);

        $report = $this->scope()->report();
        $this->assertSame($this->scope()->id, $report['scope']);
        $later = $report['threads'][0];
        $this->assertSame([421, 421, 421, 250], array_column($later['tries'], 'code'));
        foreach ($later['delays_ms'] as $i => $got) {
            $this->assertGreaterThanOrEqual(self::BACKOFF_MS[$i] - 2, $got);
        }
        $this->assertStringContainsString('at least 4 times in one thread, the most was 3',
            $this->failure(fn () => Report::assertReport($report, retried4xx: ['atLeast' => 4])));
        $this->expectException(\InvalidArgumentException::class);
        $this->expectExceptionMessage('atleast');
        $this->scope()->assertClient(retried4xx: ['atleast' => 3]);
    }

    public function testHammeringFailsTheBackoffAssertionWithTheDelays(): void
    {
        $codes = [];
        for ($i = 0; $i < 4; $i++) { // no wait at all between tries
            $codes[] = self::send($this->scope()->smtp, 'later@example.com');
        }
        $this->assertSame([421, 421, 421, 250], $codes);
        $message = $this->failure(
            fn () => $this->scope()->assertClient(retried4xx: ['atLeast' => 3, 'backoff' => true]));
        $this->assertStringStartsWith(
            "scope {$this->scope()->id}: expected growing delays after each 4xx (backoff)", $message);
        $this->assertStringContainsString('app@example.org -> later@example.com: 421 at rcpt, after ', $message);
        $this->assertStringContainsString('250 at data_end (delivered; retries 3', $message);
        $this->assertStringContainsString('backoff no', $message);
    }

    public function testARepeated550FailsNoRetryOfA5xxNamingIt(): void
    {
        $smtp = $this->scope()->smtp;
        $this->assertSame([550, 550],
            [self::send($smtp, 'nobody@example.com'), self::send($smtp, 'nobody@example.com')]);
        $message = $this->failure(fn () => $this->scope()->assertClient(retried5xx: false, gaveUpAfter5xx: true));
        $this->assertStringContainsString(
            'expected no retry after a 5xx: "550 5.1.1 No such user" (at rcpt) tried again after ', $message);
        $this->assertStringContainsString('expected a 5xx given up on (tried once)', $message);
        $this->assertStringContainsString('finding retried-5xx (violation, RFC 5321 4.2.1', $message);
    }

    public function testABareLfFailsNoViolationsNamingTheFinding(): void
    {
        $s = self::connect($this->scope()->smtp);
        $this->assertSame(250, self::say($s, "EHLO bare.example\n", true)); // LF alone: RFC 5321 2.3.8 wants CRLF
        $this->assertSame(221, self::say($s, 'QUIT'));
        fclose($s);
        $message = $this->failure(fn () => $this->scope()->assertClient(violations: 0));
        $this->assertStringContainsString('expected 0 violations, got 1: bare-lf (violation, RFC 5321 2.3.8', $message);
        $this->assertStringContainsString('"EHLO bare.example"', $message);

        // Without PHPUnit, the package's own ClientAssertionError says the same.
        $script = 'require $argv[1]; try {'
            . ' Smtpfault\Report::assertReport(json_decode(stream_get_contents(STDIN), true), violations: 0); }'
            . ' catch (Smtpfault\ClientAssertionError $e) { echo get_class($e), "\n", $e->getMessage(); }';
        $proc = proc_open([PHP_BINARY, '-r', $script, __DIR__ . '/../autoload.php'], [['pipe', 'r'], ['pipe', 'w']],
            $pipes);
        fwrite($pipes[0], json_encode($this->scope()->report()));
        fclose($pipes[0]);
        $out = stream_get_contents($pipes[1]);
        fclose($pipes[1]);
        $this->assertSame(0, proc_close($proc));
        $this->assertStringStartsWith(
            "Smtpfault\\ClientAssertionError\nscope {$this->scope()->id}: expected 0 violations, got 1: bare-lf", $out);
    }

    public function testTheServerReportsEachClientAddress(): void
    {
        $server = SharedServer::client();
        $this->assertSame(250, self::send($server->smtp, 'someone@example.com'));
        $this->assertContains('127.0.0.1', $server->report());
        $this->assertSame('127.0.0.1', $server->report('127.0.0.1')['client']);
        $server->assertClient('127.0.0.1', retried5xx: false);
        $this->assertStringContainsString('smtpfault saw no try of this client',
            $this->failure(fn () => $server->assertClient('192.0.2.1', violations: 0)));
    }
}
