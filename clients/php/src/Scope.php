<?php
declare(strict_types=1);

namespace Smtpfault;

/**
 * A virtual smtpfault inside the server: its own listeners, profile, messages, sessions and counters. It
 * ends with close(), or when its Client is closed (unless created with keep).
 */
final class Scope extends Target
{
    public readonly string $id;
    public readonly bool $keep;
    /** @var array<string, mixed> what its start profile touches (name, rules, stages, ...), as loadProfile() answers */
    public readonly array $profile;
    /** @var array<string, ?Listener> */
    private array $listeners = [];
    private bool $closed = false;

    public function __construct(private readonly Client $owner, array $response)
    {
        $this->id = $response['scope'];
        $this->keep = $response['keep'] ?? false;
        $this->profile = $response['profile'] ?? [];
        foreach (['smtp', 'submission', 'smtps'] as $name) {
            $this->listeners[$name] = Listener::from($response['listeners'][$name] ?? null);
        }
    }

    protected function connection(): Connection
    {
        return $this->owner->mainConnection();
    }

    protected function open(): Connection
    {
        return $this->owner->openConnection();
    }

    protected function scopeId(): ?string
    {
        return $this->id;
    }

    protected function listeners(): array
    {
        return $this->listeners;
    }

    public function isClosed(): bool
    {
        return $this->closed;
    }

    /** close - end the scope: its listeners close, its messages are forgotten. Closing twice does nothing. */
    public function close(): void
    {
        if ($this->closed) {
            return;
        }
        $this->closed = true;
        $this->removeCaFile();
        try {
            $this->owner->mainConnection()->request('scope.delete', ['scope' => $this->id]);
        } catch (SmtpfaultException $e) {
            if (!in_array($e->errorCode, ['not_found', 'disconnected'], true)) { // ended with its connection
                throw $e;
            }
        }
    }
}
