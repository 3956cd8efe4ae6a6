<?php
declare(strict_types=1);

namespace Smtpfault;

/**
 * A smtpfault server: spawned by start(), or reached by connect(). Its state methods act on the server's own
 * listeners; createScope() gives each test a server of its own.
 */
final class Client extends Target
{
    public const START_TIMEOUT = 60.0; // seconds for a spawned server to write its ports file (ASan starts slowly)
    public const STOP_TIMEOUT = 60.0;  // seconds for a spawned server to exit after SIGTERM (it drains up to 5 s)
    private const POLL_US = 20000;

    private ?Connection $main;
    /** @var array<string, ?Listener>|null */
    private ?array $listenerMap = null;
    /** @var resource|null */
    private $process;
    private ?int $exitCode = null;

    private function __construct(
        public readonly string $admin,
        private readonly ?string $token,
        private readonly float $timeout,
        mixed $process = null,
        private ?string $workdir = null,
        ?array $ports = null,
    ) {
        $this->process = $process;
        if ($ports !== null) {
            $this->setListeners($ports);
        }
        $this->main = new Connection($admin, $token, $timeout);
    }

    /** connect - a running server's admin socket (HOST:PORT, [IPV6]:PORT or unix:PATH) */
    public static function connect(?string $admin = null, ?string $token = null,
                                   float $timeout = Connection::REQUEST_TIMEOUT): self
    {
        // By default $SMTPFAULT_ADMIN, else 127.0.0.1:2580, and $SMTPFAULT_ADMIN_TOKEN (as the Node and
        // Python packages do).
        $env = getenv('SMTPFAULT_ADMIN');
        $admin ??= ($env !== false && $env !== '') ? $env : Connection::DEFAULT_ADMIN;
        if ($token === null) {
            $envToken = getenv('SMTPFAULT_ADMIN_TOKEN');
            $token = ($envToken !== false && $envToken !== '') ? $envToken : null;
        }
        return new self($admin, $token, $timeout);
    }

    /**
     * start - spawn the binary ($binary, else $SMTPFAULT_BIN, else smtpfault on PATH) with every listener on
     * a free port of 127.0.0.1, and connect to it. $args are more options (they win over these). The server
     * gets no SMTPFAULT_* environment variable but SMTPFAULT_PROFILES.
     */
    public static function start(?string $binary = null, array $args = [], ?string $token = null,
                                 float $timeout = Connection::REQUEST_TIMEOUT,
                                 float $startTimeout = self::START_TIMEOUT): self
    {
        $binary = $binary ?: (getenv('SMTPFAULT_BIN') ?: self::onPath('smtpfault'));
        if ($binary === null || !is_executable($binary)) {
            throw new SmtpfaultException('start_failed', $binary === null
                ? 'no smtpfault binary: set SMTPFAULT_BIN or put smtpfault on PATH' : "$binary is not executable");
        }
        $workdir = sys_get_temp_dir() . '/smtpfault-' . bin2hex(random_bytes(6));
        mkdir($workdir, 0700);
        $ports = "$workdir/ports.json";
        $argv = [$binary, '--smtp', '127.0.0.1:0', '--submission', '127.0.0.1:0', '--smtps', '127.0.0.1:0',
                 '--admin', '127.0.0.1:0', '--ports-file', $ports,
                 ...($token !== null ? ['--admin-token', $token] : []), ...$args];
        $env = array_filter(getenv(), static fn ($k) => !str_starts_with($k, 'SMTPFAULT_')
                                                        || $k === 'SMTPFAULT_PROFILES', ARRAY_FILTER_USE_KEY);
        $log = "$workdir/smtpfault.log";
        $process = proc_open($argv, [0 => ['file', '/dev/null', 'r'], 1 => ['file', $log, 'a'],
                                     2 => ['file', $log, 'a']], $pipes, null, $env);
        if ($process === false) {
            throw new SmtpfaultException('start_failed', "cannot run $binary");
        }
        $deadline = microtime(true) + $startTimeout;
        while (true) {
            $found = is_file($ports) ? json_decode((string)@file_get_contents($ports), true) : null;
            if (is_array($found) && isset($found['admin'])) {
                break;
            }
            $status = proc_get_status($process);
            if (!$status['running'] || microtime(true) > $deadline) {
                $why = $status['running'] ? 'did not start in time' : 'exited ' . self::statusCode($status);
                proc_terminate($process, 9);
                proc_close($process);
                throw new SmtpfaultException('start_failed', "$binary $why: " . self::tail($log));
            }
            usleep(self::POLL_US);
        }
        try {
            return new self($found['admin']['address'], $token, $timeout, $process, $workdir, $found);
        } catch (SmtpfaultException $e) {
            proc_terminate($process, 9);
            proc_close($process);
            throw $e;
        }
    }

    /** logPath - the spawned server's stderr (its transcript) while it runs, else null */
    public function logPath(): ?string
    {
        return $this->workdir !== null ? "{$this->workdir}/smtpfault.log" : null;
    }

    public function ping(): bool
    {
        return $this->request('ping')['pong'];
    }

    public function version(): array
    {
        return $this->request('version');
    }

    /**
     * createScope - a new scope with its own listeners, starting with $profile (a shipped profile's name, a
     * file or an array; none: no faults). It lives until $scope->close(), or this client's close() unless $keep.
     *
     * @param list<string>|null $listeners a subset of smtp, submission, smtps (default: the server's)
     */
    public function createScope(string|array|\SplFileInfo|null $profile = null, ?array $listeners = null,
                                bool $keep = false, ?string $source = null): Scope
    {
        $args = $profile !== null ? self::profileArgs($profile, $source) : [];
        if ($listeners !== null) {
            $args['listeners'] = array_values($listeners);
        }
        if ($keep) {
            $args['keep'] = true;
        }
        return new Scope($this, $this->mainConnection()->request('scope.create', $args));
    }

    /**
     * report - client.report: the story of a client address ('127.0.0.1') on the server's own listeners;
     * without one, the addresses that have a story, most recently seen first.
     */
    public function report(?string $client = null): array
    {
        $answer = $this->request('client.report', ['client' => $client]);
        return $client === null ? $answer['clients'] : $answer['report'];
    }

    /** assertClient - Scope::assertClient for a client address on the server's own listeners */
    public function assertClient(string $client, bool|array|null $retried4xx = null, ?bool $retried5xx = null,
        ?bool $gaveUpAfter5xx = null, ?bool $hammering = null, ?int $violations = null): array
    {
        return $this->assertReportOf($client,
            compact('retried4xx', 'retried5xx', 'gaveUpAfter5xx', 'hammering', 'violations'));
    }

    /** scopes - every scope of the server (scope.list) */
    public function scopes(): array
    {
        return $this->request('scope.list')['scopes'];
    }

    /**
     * close - close the connection (ending its scopes); a spawned server is stopped (SIGTERM) and waited for:
     * one that exits with a failure throws SmtpfaultException('server_failed'), its log kept.
     */
    public function close(): void
    {
        $this->removeCaFile();
        $this->main?->close();
        $this->main = null;
        if ($this->process === null) {
            return;
        }
        $status = proc_get_status($this->process);
        if ($status['running']) {
            proc_terminate($this->process, 15);
            $deadline = microtime(true) + self::STOP_TIMEOUT;
            while (($status = proc_get_status($this->process))['running'] && microtime(true) < $deadline) {
                usleep(self::POLL_US);
            }
            if ($status['running']) {
                proc_terminate($this->process, 9);
            }
        }
        $this->exitCode = self::statusCode($status);
        proc_close($this->process);
        $this->process = null;
        if ($this->exitCode !== 0) {
            throw new SmtpfaultException('server_failed', "smtpfault exited {$this->exitCode}: "
                                                          . self::tail((string)$this->logPath()));
        }
        @unlink("{$this->workdir}/smtpfault.log"); // the ports file is gone: the server removes it as it stops
        @rmdir((string)$this->workdir);
        $this->workdir = null;
    }

    /** a spawned server that close() never stopped is stopped with this object (at the latest, at exit) */
    public function __destruct()
    {
        if ($this->process !== null) {
            proc_terminate($this->process, 15);
            proc_close($this->process); // waits for it to exit
            $this->process = null;
        }
    }

    /** @internal the connection that carries commands and owns the scopes */
    public function mainConnection(): Connection
    {
        return $this->main ?? throw new SmtpfaultException('disconnected', 'this Client is closed');
    }

    /** @internal an extra connection for a wait or an event stream */
    public function openConnection(): Connection
    {
        $this->mainConnection();
        return new Connection($this->admin, $this->token, $this->timeout);
    }

    protected function connection(): Connection
    {
        return $this->mainConnection();
    }

    protected function open(): Connection
    {
        return $this->openConnection();
    }

    protected function scopeId(): ?string
    {
        return null;
    }

    protected function listeners(): array
    {
        if ($this->listenerMap === null) { // connected: the addresses the server reports
            $this->setListeners($this->stats()['listeners']);
        }
        return $this->listenerMap;
    }

    private function setListeners(array $ports): void
    {
        $this->listenerMap = [];
        foreach (['smtp', 'submission', 'smtps'] as $name) {
            $this->listenerMap[$name] = Listener::from($ports[$name] ?? null);
        }
    }

    /** the exit status of a process that ended: its code, or 128 + the signal that ended it */
    private static function statusCode(array $status): int
    {
        return $status['signaled'] ? 128 + $status['termsig'] : $status['exitcode'];
    }

    private static function onPath(string $name): ?string
    {
        foreach (explode(':', getenv('PATH') ?: '') as $dir) {
            if ($dir !== '' && is_executable("$dir/$name")) {
                return "$dir/$name";
            }
        }
        return null;
    }

    private static function tail(string $log, int $lines = 20): string
    {
        $text = @file($log, FILE_IGNORE_NEW_LINES);
        if ($text === false) {
            return "(no log at $log)";
        }
        return "its log $log ends:\n" . implode("\n", array_slice($text, -$lines));
    }
}
