<?php
/*
 * SendWelcomeTest.php - the application's mail code against smtpfault, with PHPUnit and the smtpfault package.
 *
 * Each test gets a scope of its own (the SmtpfaultScope trait: its own SMTP ports, profile and messages) on
 * the server at SMTPFAULT_ADMIN, or on one the package starts when that is not set, and puts a shipped
 * profile in force in it.
 */
declare(strict_types=1);

use PHPUnit\Framework\TestCase;
use Smtpfault\PHPUnit\SmtpfaultScope;

final class SendWelcomeTest extends TestCase
{
    use SmtpfaultScope;

    /** the application's settings for this test's scope, trusting the server's test CA as the app would a real one */
    private function config(array $overrides = []): array
    {
        return $overrides + ['host' => $this->scope()->smtp->host, 'port' => $this->scope()->smtp->port,
                             'user' => 'app@example.com', 'pass' => 'app-password',
                             'cafile' => $this->scope()->caFile, 'retry_delay_ms' => 100, 'timeout' => 5];
    }

    /** the MailError send_welcome throws, or a failure when it does not */
    private function mailError(array $config): MailError
    {
        try {
            send_welcome('new.user@example.org', $config);
        } catch (MailError $e) {
            return $e;
        }
        $this->fail('expected a MailError');
    }

    public function testAWelcomeMailArrives(): void
    {
        $this->assertSame(1, send_welcome('new.user@example.org', $this->config()));
        $message = $this->scope()->waitForMessage(to: 'new.user@example.org', timeout: 5);
        $this->assertSame(['new.user@example.org'], $message['recipients']);
    }

    public function testARefusedLoginIsShownToTheUserAndNotRetried(): void
    {
        $this->scope()->loadProfile('auth-535-wrong-password');
        $e = $this->mailError($this->config(['pass' => 'not-the-password']));
        $this->assertSame('auth', $e->kind);
        $this->assertSame(1, $e->attempts);
        $this->assertStringContainsString('535 5.7.8', $e->reply);
    }

    public function testA421GreetingIsRetriedThenReportedAsTemporary(): void
    {
        $this->scope()->loadProfile('server-421-try-again-later');
        $e = $this->mailError($this->config(['attempts' => 3]));
        $this->assertSame('temporary', $e->kind);
        $this->assertSame(3, $e->attempts);
        $this->assertSame(3, $this->scope()->stats()['faults']['fired']); // three refused connections
    }

    public function testAMessageRefusedAfterDataIsPermanent(): void
    {
        $this->scope()->loadProfile('data-554-transaction-failed-blacklisted');
        $e = $this->mailError($this->config());
        $this->assertSame('rejected', $e->kind);
        $this->assertSame(1, $e->attempts);
        $this->assertSame([], $this->scope()->messages()); // nothing kept
    }
}
