<?php
declare(strict_types=1);

use PHPMailer\PHPMailer\{Exception, PHPMailer};
use PHPUnit\Framework\TestCase;

/**
 * ParallelTest - tests with conflicting faults, run at once against one server: each in its own scope.
 *
 * The server is started once for the whole run (make run, or a compose service); SMTPFAULT_ADMIN says where
 * its admin socket is. The SmtpfaultScope trait gives each test a scope of its own: every test sees only its
 * own fault and its own mail. PHPUnit runs one test at a time, so eight processes run at once, process N
 * running the tests of data set #N: seq 0 7 | xargs -P 8 -I{} phpunit --filter '#{}'
 */
final class ParallelTest extends TestCase
{
    use Smtpfault\PHPUnit\SmtpfaultScope;

    /** @return array<string, mixed> each test's scope: its SMTP listener only */
    protected function smtpfaultScopeOptions(): array
    {
        return ['listeners' => ['smtp']];
    }

    /** @return array<int, array{int}> one data set per process */
    public static function workers(): array
    {
        return array_map(fn (int $n) => [$n], range(0, 7));
    }

    private function send(string $subject): void
    {
        $mail = new PHPMailer(true);
        $mail->isSMTP();
        [$mail->Host, $mail->Port] = [$this->scope()->smtp->host, $this->scope()->smtp->port];
        $mail->SMTPOptions = ['ssl' => ['cafile' => $this->scope()->caFile]];
        [$mail->Timeout, $mail->getSMTPInstance()->Timelimit] = [30, 30];
        $mail->setFrom('app@example.test');
        $mail->addAddress('user@example.test');
        [$mail->Subject, $mail->Body] = [$subject, 'Hello.'];
        $mail->send();
    }

    /** @dataProvider workers */
    public function testUserUnknown(int $n): void
    {
        $this->scope()->loadProfile('rcpt-550-user-unknown');
        try {
            $this->send("unknown $n");
            $this->fail('the 550 should fail the send');
        } catch (Exception $e) {
            $this->assertStringContainsString('user@example.test', $e->getMessage());
        }
        $this->assertSame([], $this->scope()->messages());
    }

    /** @dataProvider workers */
    public function testTryAgainLater(int $n): void
    {
        $this->scope()->loadProfile('server-421-try-again-later');
        try {
            $this->send("busy $n");
            $this->fail('the 421 should fail the send');
        } catch (Exception) {
            $this->assertSame(['greeting' => 1], $this->scope()->stats()['faults']['by_stage']);
        }
    }

    /** @dataProvider workers */
    public function testDelivered(int $n): void
    {
        $this->send("hello $n");
        $this->assertSame(['user@example.test'], $this->scope()->waitForMessage(to: 'user@example.test')['recipients']);
        $stats = $this->scope()->stats();
        $this->assertSame([1, 0], [$stats['messages']['accepted'], $stats['faults']['fired']]);
    }
}
