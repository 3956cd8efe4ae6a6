<?php
declare(strict_types=1);

namespace Smtpfault;

/**
 * The state commands, on the server's own listeners (Client) or on one scope (Scope). Profiles are given as
 * an array (the profile itself), a file (an SplFileInfo, or a string with a "/", read here and sent inline, so
 * it works against a server elsewhere), or another string: a shipped profile's name.
 *
 * @property-read string $ca the PEM of the CA the server's certificates are signed by
 * @property-read string $caFile $ca in a temporary file, removed by close()
 * @property-read ?Listener $smtp
 * @property-read ?Listener $submission
 * @property-read ?Listener $smtps
 */
abstract class Target
{
    public const WAIT_MARGIN = 30.0; // seconds past a messages.wait timeout before its answer counts as lost
    public const SETTLE_TIMEOUT = 5.0; // seconds assertClient waits for open sessions to end (the server lingers 2 s)

    private ?string $caPem = null;
    private ?string $caPath = null;

    abstract protected function connection(): Connection;

    /** open - an extra connection, for commands that hold theirs (messages.wait, events.subscribe) */
    abstract protected function open(): Connection;

    abstract protected function scopeId(): ?string;

    /** @return array<string, ?Listener> */
    abstract protected function listeners(): array;

    protected function request(string $cmd, array $args = []): array
    {
        return $this->connection()->request($cmd, $this->scoped($args));
    }

    private function scoped(array $args): array
    {
        $args = array_filter($args, static fn ($v) => $v !== null);
        if ($this->scopeId() !== null) {
            $args['scope'] = $this->scopeId();
        }
        return $args;
    }

    /** profileArgs - the request arguments naming a profile (see the class comment) */
    public static function profileArgs(string|array|\SplFileInfo $profile, ?string $source = null): array
    {
        if (is_array($profile)) {
            return ['profile' => (object)$profile] + ($source !== null ? ['source' => $source] : []);
        }
        if (is_string($profile) && !str_contains($profile, '/')) {
            return ['name' => $profile];
        }
        $path = (string)$profile;
        $text = @file_get_contents($path);
        if ($text === false) {
            $message = "$path: cannot read: " . (error_get_last()['message'] ?? 'error');
            throw new SmtpfaultException('invalid_profile', $message, [$message]);
        }
        try {
            $inline = json_decode($text, false, 512, JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            $message = "$path: invalid JSON: {$e->getMessage()}";
            throw new SmtpfaultException('invalid_profile', $message, [$message]);
        }
        return ['profile' => $inline, 'source' => $source ?? $path];
    }

    /** loadProfile - put a profile in force; what it touches (name, rules, stages, listeners, settings) */
    public function loadProfile(string|array|\SplFileInfo $profile, ?string $source = null): array
    {
        return $this->request('profile.load', self::profileArgs($profile, $source));
    }

    /** validateProfile - check a profile without loading it; invalid_profile with every error */
    public function validateProfile(string|array|\SplFileInfo $profile, ?string $source = null): array
    {
        return $this->request('profile.validate', self::profileArgs($profile, $source));
    }

    /** getProfile - the profile in force: name, rules, and the profile itself under "profile" */
    public function getProfile(): array
    {
        return $this->request('profile.get');
    }

    public function clearProfile(): void
    {
        $this->request('profile.clear');
    }

    /** messages - the captured messages' envelopes, oldest first (globs for $to and $from) */
    public function messages(?string $to = null, ?string $from = null, ?string $since = null, ?int $limit = null,
                             ?string $subject = null): array
    {
        return $this->request('messages.list', ['to' => $to, 'from' => $from, 'subject' => $subject,
                                                'since' => $since, 'limit' => $limit])['messages'];
    }

    /** message - "message" (the envelope), "headers" ([name, value] pairs), "body", with $raw "raw_base64" */
    public function message(string $id, bool $raw = false): array
    {
        return $this->request('messages.get', ['message' => $id, 'raw' => $raw ?: null]);
    }

    public function deleteMessage(string $id): void
    {
        $this->request('messages.delete', ['message' => $id]);
    }

    /** clearMessages - forget every captured message; how many there were */
    public function clearMessages(): int
    {
        return $this->request('messages.clear')['cleared'];
    }

    /**
     * waitForMessage - the envelope of the first matching message: at once when one is kept, else as soon as
     * one arrives; SmtpfaultException('timeout') after $timeout seconds. Waits on a connection of its own.
     */
    public function waitForMessage(?string $to = null, ?string $from = null, ?string $since = null,
                                   float $timeout = 10.0, ?string $subject = null): array
    {
        $conn = $this->open();
        try {
            $args = $this->scoped(['to' => $to, 'from' => $from, 'subject' => $subject, 'since' => $since,
                                   'timeout' => $timeout]);
            return $conn->request('messages.wait', $args, $timeout + self::WAIT_MARGIN)['message'];
        } finally {
            $conn->close();
        }
    }

    /** sessions - ["live" => [...], "recent" => [...]], without transcripts */
    public function sessions(): array
    {
        return $this->request('sessions.list');
    }

    /** session - one session with its transcript */
    public function session(int $id): array
    {
        return $this->request('sessions.get', ['session' => $id])['session'];
    }

    public function stats(): array
    {
        return $this->request('stats');
    }

    /** reset - back to the start profile, with fresh counters and no messages */
    public function reset(): array
    {
        return $this->request('reset');
    }

    /**
     * events - every session event from now on (subscribed before it returns), on a connection of its own;
     * with $timeout, waiting longer than that for one event throws SmtpfaultException('timeout').
     */
    public function events(?float $timeout = null): EventStream
    {
        $conn = $this->open();
        try {
            $conn->request('events.subscribe', $this->scoped([]));
        } catch (\Throwable $e) {
            $conn->close();
            throw $e;
        }
        return new EventStream($conn, $timeout);
    }

    /**
     * assertReportOf - Report::assertReport on client.report (of the scope, or of $client), once the client's
     * open sessions have ended (a session's findings join the story when it ends) or SETTLE_TIMEOUT passed.
     */
    protected function assertReportOf(?string $client, array $expect): array
    {
        $deadline = microtime(true) + self::SETTLE_TIMEOUT;
        $open = static fn ($s) => $client === null
            || trim(substr($s['client'], 0, strrpos($s['client'], ':')), '[]') === $client;
        while (array_filter($this->sessions()['live'], $open) !== [] && microtime(true) < $deadline) {
            usleep(20000);
        }
        try {
            $report = $this->request('client.report', ['client' => $client])['report'];
        } catch (SmtpfaultException $e) {
            if ($e->errorCode !== 'not_found') {
                throw $e;
            }
            Report::fail("smtpfault saw no try of this client: {$e->detail}");
        }
        return Report::assertReport($report, ...$expect);
    }

    public function ca(): string
    {
        return $this->caPem ??= $this->request('tls.ca')['pem'];
    }

    /** caFile - ca() in a temporary file (removed by close()), for clients that want a path */
    public function caFile(): string
    {
        if ($this->caPath === null) {
            $path = tempnam(sys_get_temp_dir(), 'smtpfault-ca-');
            file_put_contents($path, $this->ca());
            $this->caPath = $path;
        }
        return $this->caPath;
    }

    protected function removeCaFile(): void
    {
        if ($this->caPath !== null) {
            @unlink($this->caPath);
            $this->caPath = null;
        }
    }

    public function __get(string $name): mixed
    {
        return match ($name) {
            'ca' => $this->ca(),
            'caFile' => $this->caFile(),
            'smtp', 'submission', 'smtps' => $this->listeners()[$name] ?? null,
            default => throw new \Error('Undefined property: ' . static::class . "::\$$name"),
        };
    }
}
