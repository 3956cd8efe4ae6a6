<?php
declare(strict_types=1);

namespace Smtpfault\Tests;

use PHPMailer\PHPMailer\Exception as PHPMailerException;
use PHPUnit\Framework\TestCase;
use Smtpfault\Client;
use Smtpfault\PHPUnit\SharedServer;
use Smtpfault\SmtpfaultException;

/**
 * Client against the real binary: start and connect, every state command on the server's own listeners,
 * each error type with its admin code, and PHPMailer sending with verification against the CA.
 */
final class ClientTest extends TestCase
{
    use ExpectError;

    private const RETRY_ONCE = ['name' => 'retry-once', 'rules' => [
        ['when' => ['stage' => 'rcpt', 'times' => 1], 'do' => ['reply' => '451 4.3.0 Try again later']]]];

    private Client $server;

    protected function setUp(): void
    {
        $this->server = SharedServer::client();
    }

    protected function tearDown(): void
    {
        $this->server->reset(); // these tests change the server's own state, not a scope's
    }


    public function testStartGivesAServerOnFreePorts(): void
    {
        $this->assertTrue($this->server->ping());
        $this->assertNotEmpty($this->server->version()['version']);
        $ports = [$this->server->smtp->port, $this->server->submission->port, $this->server->smtps->port];
        $this->assertCount(3, array_unique($ports));
        $this->assertNotContains(0, $ports);
        $this->assertFileExists($this->server->logPath());
    }

    public function testConnectToARunningServer(): void
    {
        $other = Client::connect($this->server->admin);
        $this->assertTrue($other->ping());
        $this->assertEquals($this->server->smtp, $other->smtp); // read from the server's stats when connected
        $this->assertNull($other->logPath());
        $other->close();
    }

    public function testConnectOverAUnixSocket(): void
    {
        $dir = sys_get_temp_dir() . '/sf-' . bin2hex(random_bytes(4)); // a socket path is at most 107 bytes
        mkdir($dir, 0700);
        $sf = Client::start(args: ['--admin', "unix:$dir/admin.sock"]);
        try {
            $other = Client::connect("unix:$dir/admin.sock");
            $this->assertTrue($other->ping());
            $this->assertEquals($sf->smtp, $other->smtp);
            $other->close();
        } finally {
            $sf->close();
            rmdir($dir);
        }
    }

    public function testTokenAndUnauthorized(): void
    {
        $sf = Client::start(token: 's3cret');
        try {
            $this->assertTrue($sf->ping());
            try { // verification is on: another server's CA (each generates its own) does not verify this one
                Mail::send($this->server->smtp, $sf->caFile, 'mallory@example.com');
                $this->fail('a certificate of another CA was accepted');
            } catch (PHPMailerException $e) {
                $this->assertStringContainsString('certificate verify failed', $e->getMessage());
            }
            $bad = Client::connect($sf->admin, 'wrong');
            $e = self::error(fn () => $bad->ping());
            $this->assertSame('unauthorized', $e->errorCode);
            $this->assertStringStartsWith('unauthorized: ', $e->getMessage());
            $bad->close();
        } finally {
            $sf->close();
        }
    }

    public function testStartFailuresAreReported(): void
    {
        $e = self::error(fn () => Client::start('/nonexistent/smtpfault'));
        $this->assertSame('start_failed', $e->errorCode);
        $e = self::error(fn () => Client::start(args: ['--max-recipients', '5']));
        $this->assertSame('start_failed', $e->errorCode);
        $this->assertStringContainsString('exited 2', $e->detail);
        $this->assertStringContainsString('--max-recipients', $e->detail); // the server's words, from its log
    }

    public function testConnectToNothingIsDisconnected(): void
    {
        $socket = stream_socket_server('tcp://127.0.0.1:0');
        $address = stream_socket_get_name($socket, false);
        fclose($socket); // the port is free again: connections are refused
        $e = self::error(fn () => Client::connect($address));
        $this->assertSame('disconnected', $e->errorCode);
    }

    public function testProfilesByNameArrayAndFile(): void
    {
        $this->assertSame('greylisting-450', $this->server->loadProfile('greylisting-450')['name']);
        $this->assertSame('greylisting-450', $this->server->getProfile()['name']);
        $this->assertSame(1, $this->server->loadProfile(self::RETRY_ONCE)['rules']);
        $this->assertSame(self::RETRY_ONCE, $this->server->getProfile()['profile']);
        $path = tempnam(sys_get_temp_dir(), 'profile-');
        file_put_contents($path, '{"name": "from-a-file", "rules": []}');
        try {
            $this->assertSame('from-a-file', $this->server->loadProfile($path)['name']);
            $this->assertSame('from-a-file', $this->server->loadProfile(new \SplFileInfo($path))['name']);
        } finally {
            unlink($path);
        }
        $this->assertTrue($this->server->validateProfile('rcpt-550-user-unknown')['valid']);
        $this->server->clearProfile();
        $this->assertSame('', $this->server->getProfile()['name']);
    }

    public function testInvalidProfileCarriesEveryError(): void
    {
        $broken = ['rules' => [['when' => ['stage' => 'rpct'], 'do' => ['greylist' => '1s']],
                               ['when' => ['stage' => 'rcpt'], 'do' => ['reply' => '999 nonsense']]]];
        $e = self::error(fn () => $this->server->loadProfile($broken, 'broken.json'));
        $this->assertSame('invalid_profile', $e->errorCode);
        $this->assertCount(2, $e->errors);
        $this->assertStringStartsWith('broken.json: rules[0].when.stage: unknown stage', $e->errors[0]);
        $this->assertStringStartsWith('broken.json: rules[1].', $e->errors[1]);
        $path = tempnam(sys_get_temp_dir(), 'profile-');
        file_put_contents($path, '{nope');
        $e = self::error(fn () => $this->server->validateProfile($path));
        unlink($path);
        $this->assertSame('invalid_profile', $e->errorCode);
        $this->assertStringStartsWith("$path: invalid JSON", $e->errors[0]);
        $this->assertSame('not_found', self::error(fn () => $this->server->loadProfile('no-such-profile'))->errorCode);
    }

    public function testMessagesWithPHPMailerVerifyingTheCa(): void
    {
        Mail::send($this->server->smtp, $this->server->caFile, 'alice@example.com', 'Your invoice');
        $envelope = $this->server->waitForMessage(to: 'alice@*', timeout: 10);
        $this->assertSame(['alice@example.com'], $envelope['recipients']);
        $this->assertNotNull($envelope['tls']); // STARTTLS, verified against caFile
        $this->assertSame([$envelope['id']], array_column($this->server->messages(to: 'alice@example.com'), 'id'));
        $this->assertSame([$envelope['id']], array_column($this->server->messages(subject: 'your INVOICE'), 'id'));
        $this->assertSame([], $this->server->messages(subject: '*receipt*'));
        $this->assertSame($envelope['id'], $this->server->waitForMessage(subject: '*invoice', timeout: 1)['id']);
        $this->assertSame([], $this->server->messages(from: 'nobody@*'));
        $got = $this->server->message($envelope['id'], raw: true);
        $this->assertContains(['Subject', 'Your invoice'], $got['headers']);
        $this->assertSame('Hello!', rtrim($got['body']));
        $this->assertArrayHasKey('raw_base64', $got);
        $this->server->deleteMessage($envelope['id']);
        $this->assertSame('not_found', self::error(fn () => $this->server->message($envelope['id']))->errorCode);
        Mail::send($this->server->smtp, $this->server->caFile, 'bob@example.com');
        $this->assertSame(1, $this->server->clearMessages());
    }

    public function testWaitTimesOutAndBadArguments(): void
    {
        $e = self::error(fn () => $this->server->waitForMessage(to: 'nobody@*', timeout: 0.2));
        $this->assertSame('timeout', $e->errorCode);
        $this->assertSame('bad_argument', self::error(fn () => $this->server->messages(limit: 0))->errorCode);
        $this->assertTrue($this->server->ping()); // errors leave the connection usable
    }

    public function testSessionsStatsReset(): void
    {
        $this->server->loadProfile(self::RETRY_ONCE);
        try {
            Mail::send($this->server->smtp, $this->server->caFile, 'carol@example.com');
            $this->fail('the first RCPT should get 451');
        } catch (PHPMailerException) {
        }
        Mail::send($this->server->smtp, $this->server->caFile, 'carol@example.com');
        $stats = $this->server->stats();
        $this->assertSame(1, $stats['faults']['fired']);
        $this->assertSame(1, $stats['messages']['accepted']);
        $recent = $this->server->sessions()['recent'];
        $this->assertGreaterThanOrEqual(2, count($recent));
        $transcript = $this->server->session($recent[0]['id'])['transcript'];
        $this->assertSame('connect', $transcript[0]['event']);
        $this->assertSame('close', end($transcript)['event']);
        $this->assertSame('not_found', self::error(fn () => $this->server->session(1000000000))->errorCode);
        $this->assertSame(1, $this->server->reset()['cleared']);
        $this->assertSame(0, $this->server->stats()['faults']['fired']);
    }

    public function testEvents(): void
    {
        $events = $this->server->events(30);
        Mail::send($this->server->smtp, $this->server->caFile, 'dave@example.com');
        $seen = [];
        foreach ($events as $event) {
            $seen[] = $event['event'];
            if ($event['event'] === 'close') {
                break;
            }
        }
        $events->close();
        $this->assertSame('connect', $seen[0]);
        $this->assertContains('tls', $seen);
        $this->assertContains('message', $seen);
    }

    public function testCaFileIsAPemRemovedAtClose(): void
    {
        $other = Client::connect($this->server->admin);
        $path = $other->caFile;
        $this->assertSame($this->server->ca, file_get_contents($path));
        $this->assertStringStartsWith('-----BEGIN CERTIFICATE-----', $other->ca());
        $other->close();
        $this->assertFileDoesNotExist($path);
    }
}
