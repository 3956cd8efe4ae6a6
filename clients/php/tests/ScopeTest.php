<?php
declare(strict_types=1);

namespace Smtpfault\Tests;

use PHPMailer\PHPMailer\Exception as PHPMailerException;
use PHPUnit\Framework\TestCase;
use Smtpfault\Client;
use Smtpfault\Listener;
use Smtpfault\PHPUnit\SharedServer;
use Smtpfault\SmtpfaultException;

/**
 * Scopes through the package: each its own listeners, profile and messages, several at once (and from
 * processes sending at the same time); their end (close, the client's close, keep); scoped events and waits.
 */
final class ScopeTest extends TestCase
{
    use ExpectError;

    private const END_DEADLINE = 30.0; // seconds for a scope's listeners to close once it ended

    private static function refuses(Listener $l): bool
    {
        $s = @stream_socket_client("tcp://{$l->address}", $errno, $errstr, Mail::IO_TIMEOUT);
        if ($s === false) {
            return true;
        }
        fclose($s);
        return false;
    }

    private static function waitUntil(callable $predicate, string $what): void
    {
        $deadline = microtime(true) + self::END_DEADLINE;
        while (!$predicate()) {
            self::assertLessThan($deadline, microtime(true), "not true in " . self::END_DEADLINE . " s: $what");
            usleep(20000);
        }
    }


    public function testAScopeHasItsOwnListenersProfileAndMessages(): void
    {
        $server = SharedServer::client();
        $scope = $server->createScope('local-451-temporary-failure');
        try {
            $own = [$server->smtp->port, $server->submission->port, $server->smtps->port];
            $this->assertSame([], array_intersect([$scope->smtp->port, $scope->submission->port,
                                                   $scope->smtps->port], $own));
            $this->assertSame('local-451-temporary-failure', $scope->profile['name']);
            try {
                Mail::send($scope->smtp, $scope->caFile, 'alice@example.com');
                $this->fail('the message should get 451');
            } catch (PHPMailerException) {
            }
            $this->assertSame(1, $scope->stats()['faults']['fired']);
            $this->assertSame([], $scope->messages());
            $scope->clearProfile();
            Mail::send($scope->smtp, $scope->caFile, 'alice@example.com');
            $envelope = $scope->waitForMessage(to: 'alice@example.com');
            $this->assertSame('Hello!', rtrim($scope->message($envelope['id'])['body']));
            $this->assertNotContains($envelope['id'], array_column($server->messages(), 'id'));
            $this->assertContains($scope->id, array_column($server->scopes(), 'scope'));
            $this->assertSame(1, $scope->reset()['cleared']);
            $this->assertSame('local-451-temporary-failure', $scope->getProfile()['name']); // its start profile
        } finally {
            $scope->close();
        }
        self::waitUntil(fn () => self::refuses($scope->smtp), "the closed scope's port refuses");
        $this->assertSame('not_found', self::error(fn () => $scope->stats())->errorCode);
        $scope->close(); // a second close does nothing
        $this->assertTrue($scope->isClosed());
    }

    public function testScopesInParallel(): void
    {
        $server = SharedServer::client();
        $scopes = [];
        for ($i = 0; $i < 4; $i++) {
            $scopes[$i] = $server->createScope(['name' => "parallel-$i", 'rules' => []]);
        }
        $results = tempnam(sys_get_temp_dir(), 'smtpfault-parallel-');
        $children = [];
        foreach ($scopes as $i => $scope) { // each sends from its own process, all at once
            $caFile = $scope->caFile;
            $pid = pcntl_fork();
            if ($pid === 0) {
                try {
                    Mail::send($scope->smtp, $caFile, "user$i@example.com");
                    $result = "user$i: sent\n";
                } catch (\Throwable $e) {
                    $result = "user$i: {$e->getMessage()}\n";
                }
                file_put_contents($results, $result, FILE_APPEND | LOCK_EX);
                posix_kill(getmypid(), SIGKILL); // no shutdown functions (they would stop the shared server)
            }
            $children[$i] = $pid;
        }
        foreach ($children as $pid) {
            pcntl_waitpid($pid, $status);
        }
        $lines = file($results, FILE_IGNORE_NEW_LINES);
        unlink($results);
        sort($lines);
        $this->assertSame(array_map(fn ($i) => "user$i: sent", array_keys($scopes)), $lines);
        foreach ($scopes as $i => $scope) {
            $scope->waitForMessage(to: "user$i@*", timeout: 30);
            $this->assertSame([["user$i@example.com"]], array_column($scope->messages(), 'recipients'));
            $scope->close();
        }
    }

    public function testScopesEndWithTheClientUnlessKept(): void
    {
        $server = SharedServer::client();
        $other = Client::connect($server->admin);
        $ends = $other->createScope();
        $kept = $other->createScope(keep: true);
        $this->assertTrue($kept->keep);
        $this->assertFalse($ends->keep);
        $other->close();
        self::waitUntil(fn () => self::refuses($ends->smtp), 'a scope ends with the connection that created it');
        $this->assertNotContains($ends->id, array_column($server->scopes(), 'scope'));
        $this->assertFalse(self::refuses($kept->smtp));
        $server->mainConnection()->request('scope.delete', ['scope' => $kept->id]); // it outlived its client
        self::waitUntil(fn () => self::refuses($kept->smtp), "a deleted scope's port refuses");
    }

    public function testScopeOptionsAndErrors(): void
    {
        $server = SharedServer::client();
        $scope = $server->createScope(listeners: ['smtp']);
        $this->assertNotNull($scope->smtp);
        $this->assertNull($scope->submission);
        $this->assertNull($scope->smtps);
        $scope->close();
        $e = self::error(fn () => $server->createScope(['rules' => [['when' => ['stage' => 'rpct'],
                                                                      'do' => ['greylist' => '1s']]]]));
        $this->assertSame('invalid_profile', $e->errorCode);
        $this->assertStringContainsString('rules[0].when.stage', $e->errors[0]);
        $this->assertSame('not_found', self::error(fn () => $server->createScope('no-such-profile'))->errorCode);
        $this->assertSame('bad_argument', self::error(fn () => $server->createScope(listeners: ['pop3']))->errorCode);
    }

    public function testScopeEventsEndWithTheScope(): void
    {
        $scope = SharedServer::client()->createScope();
        $events = $scope->events(30);
        Mail::send($scope->smtp, $scope->caFile, 'erin@example.com');
        $seen = [];
        foreach ($events as $event) {
            $this->assertSame($scope->id, $event['scope']);
            $seen[] = $event['event'];
            if ($event['event'] === 'message') {
                $scope->close(); // the stream goes on to the session's end, then scope_end, then ends
            }
        }
        $this->assertContains('message', $seen);
        $this->assertSame('scope_end', end($seen));
    }
}
