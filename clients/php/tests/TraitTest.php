<?php
declare(strict_types=1);

namespace Smtpfault\Tests;

use PHPUnit\Framework\TestCase;
use Smtpfault\PHPUnit\SmtpfaultScope;

/** The trait: a fresh scope per test, started as smtpfaultScopeOptions() says, closed after it. */
final class TraitTest extends TestCase
{
    use SmtpfaultScope;

    private static array $ids = [];

    protected function smtpfaultScopeOptions(): array
    {
        return ['profile' => 'local-451-temporary-failure'];
    }

    public function testEachTestGetsItsOwnScope(): void
    {
        $this->assertSame('local-451-temporary-failure', $this->scope()->getProfile()['name']);
        $this->assertSame([], $this->scope()->messages());
        self::$ids[] = $this->scope()->id;
    }

    /** @depends testEachTestGetsItsOwnScope */
    public function testTheScopeOfTheTestBeforeIsClosed(): void
    {
        $this->assertNotContains($this->scope()->id, self::$ids);
        $listed = array_column(\Smtpfault\PHPUnit\SharedServer::client()->scopes(), 'scope');
        $this->assertNotContains(self::$ids[0], $listed);
        $this->assertContains($this->scope()->id, $listed);
    }
}
