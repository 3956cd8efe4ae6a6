<?php
declare(strict_types=1);

namespace Smtpfault;

/**
 * One connection to the admin socket: newline-delimited JSON requests with ids. The server answers a
 * connection's requests in order, so each request waits for its own response.
 */
final class Connection
{
    public const DEFAULT_ADMIN = '127.0.0.1:2580';
    public const REQUEST_TIMEOUT = 30.0; // seconds a command may take to be answered (room for a server under ASan)
    private const CONNECT_TIMEOUT = 10.0;
    private const FOREVER = 86400; // stream_set_timeout has no "none": a day stands for it

    /** @var resource */
    private $stream;
    private int $nextId = 0;
    private bool $broken = false;

    /** @param string $address HOST:PORT, [IPV6]:PORT or unix:PATH */
    public function __construct(
        public readonly string $address,
        private readonly ?string $token = null,
        private readonly float $timeout = self::REQUEST_TIMEOUT,
    ) {
        $uri = str_starts_with($address, 'unix:') ? 'unix://' . substr($address, 5) : "tcp://$address";
        $stream = @stream_socket_client($uri, $errno, $errstr, self::CONNECT_TIMEOUT);
        if ($stream === false) {
            throw new SmtpfaultException('disconnected', "cannot connect to the admin socket $address: $errstr");
        }
        $this->stream = $stream;
    }

    /** send - write one request; its id */
    public function send(string $cmd, array $args): int
    {
        if ($this->broken) {
            throw new SmtpfaultException('disconnected', "the connection to {$this->address} is closed");
        }
        $request = $this->token !== null ? ['token' => $this->token] : []; // first: see the 64 KiB rule
        $request += ['id' => ++$this->nextId, 'cmd' => $cmd] + $args;
        $line = json_encode($request, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR) . "\n";
        for ($done = 0; $done < strlen($line); $done += $n) {
            $n = @fwrite($this->stream, substr($line, $done));
            if ($n === false || $n === 0) {
                $this->fail("cannot write to {$this->address}");
            }
        }
        return $this->nextId;
    }

    /**
     * read - the next line the server sends, decoded; null at the end of the stream. A timeout breaks the
     * connection (the rest of a line may still come) and throws SmtpfaultException('timeout').
     */
    public function read(?float $timeout): ?array
    {
        $seconds = $timeout ?? self::FOREVER;
        stream_set_timeout($this->stream, (int)$seconds, (int)(($seconds - floor($seconds)) * 1e6));
        $line = fgets($this->stream);
        if ($line === false || !str_ends_with($line, "\n")) {
            $this->broken = true;
            if (stream_get_meta_data($this->stream)['timed_out']) {
                throw new SmtpfaultException('timeout', "no answer from {$this->address} in $seconds s");
            }
            return null;
        }
        return json_decode($line, true, 512, JSON_THROW_ON_ERROR);
    }

    /** request - one command; its response without "id" and "ok", or a SmtpfaultException with its code */
    public function request(string $cmd, array $args = [], ?float $timeout = null): array
    {
        $want = $this->send($cmd, $args);
        $response = $this->read($timeout ?? $this->timeout);
        if ($response === null) {
            $this->fail("{$this->address} closed the connection before answering $cmd");
        }
        if (($response['id'] ?? null) !== $want) {
            $this->fail("{$this->address} answered " . json_encode($response['id'] ?? null) . " to request $want");
        }
        return self::check($response);
    }

    /** check - the fields of an ok response; a SmtpfaultException for an error response */
    public static function check(array $response): array
    {
        if (empty($response['ok'])) {
            $error = $response['error'] ?? [];
            throw new SmtpfaultException($error['code'] ?? 'internal', $error['message'] ?? json_encode($response),
                                         $response['errors'] ?? []);
        }
        unset($response['id'], $response['ok']);
        return $response;
    }

    public function close(): void
    {
        $this->broken = true;
        if (is_resource($this->stream)) {
            fclose($this->stream);
        }
    }

    public function __destruct()
    {
        $this->close();
    }

    private function fail(string $message): never
    {
        $this->broken = true;
        throw new SmtpfaultException('disconnected', $message);
    }
}
