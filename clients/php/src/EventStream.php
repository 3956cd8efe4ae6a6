<?php
declare(strict_types=1);

namespace Smtpfault;

/**
 * Session events as arrays (event, session, time, text; "scope" in a scope), in order: foreach over it. It
 * ends when closed, when the server stops, or after a scope's last event ["event" => "scope_end"].
 *
 * @implements \IteratorAggregate<int, array>
 */
final class EventStream implements \IteratorAggregate
{
    private bool $done = false;

    public function __construct(private readonly Connection $conn, private readonly ?float $timeout)
    {
    }

    public function getIterator(): \Generator
    {
        while (!$this->done) {
            $line = $this->conn->read($this->timeout);
            if ($line === null) {
                break;
            }
            if (isset($line['event'])) {
                if ($line['event'] === 'scope_end') {
                    $this->close();
                }
                yield $line;
            } else {
                Connection::check($line); // a response, on a connection that sends no requests: only an error
            }
        }
        $this->close();
    }

    public function close(): void
    {
        $this->done = true;
        $this->conn->close();
    }
}
