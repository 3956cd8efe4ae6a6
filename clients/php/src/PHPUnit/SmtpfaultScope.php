<?php
declare(strict_types=1);

namespace Smtpfault\PHPUnit;

use PHPUnit\Framework\Attributes\After;
use PHPUnit\Framework\Attributes\Before;
use Smtpfault\Scope;

/**
 * For a PHPUnit TestCase: each test gets a fresh scope of the shared server (SharedServer), $this->scope(),
 * closed after it. Override smtpfaultScopeOptions() to choose how scopes start (createScope's named
 * arguments: profile, listeners). The hooks are marked for PHPUnit 9 (@before) and 10+ (attributes).
 */
trait SmtpfaultScope
{
    private ?Scope $smtpfaultScope = null;

    /** @return array<string, mixed> the named arguments of Client::createScope for this test's scope */
    protected function smtpfaultScopeOptions(): array
    {
        return [];
    }

    /** @before */
    #[Before]
    public function createSmtpfaultScope(): void
    {
        $this->smtpfaultScope = SharedServer::client()->createScope(...$this->smtpfaultScopeOptions());
    }

    /** @after */
    #[After]
    public function closeSmtpfaultScope(): void
    {
        $this->smtpfaultScope?->close();
        $this->smtpfaultScope = null;
    }

    /** scope - this test's scope */
    protected function scope(): Scope
    {
        return $this->smtpfaultScope ?? throw new \LogicException('no smtpfault scope outside a test');
    }
}
