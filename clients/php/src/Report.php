<?php
declare(strict_types=1);

namespace Smtpfault;

/**
 * Checks a client.report (the findings and retry story of a client or a scope) against what a test expects,
 * failing with the client's timeline: under PHPUnit as a failed assertion (PHPUnit's Assert::fail, and a
 * passing check counts as one assertion), else with a ClientAssertionError.
 */
final class Report
{
    /**
     * assertReport - fail unless the report shows each expectation given: $retried4xx (true, false, or
     * ['atLeast' => N, 'backoff' => bool]: one thread retried a 4xx N times, its delays growing or not),
     * $retried5xx, $gaveUpAfter5xx, $hammering, $violations (how many kinds). The report, when it passes.
     */
    public static function assertReport(array $report, bool|array|null $retried4xx = null, ?bool $retried5xx = null,
        ?bool $gaveUpAfter5xx = null, ?bool $hammering = null, ?int $violations = null): array
    {
        $summary = $report['summary'];
        $problems = [];
        if (is_array($retried4xx)) {
            $extra = array_diff(array_keys($retried4xx), ['atLeast', 'backoff']);
            if ($extra !== []) {
                throw new \InvalidArgumentException(
                    'retried4xx takes atLeast and backoff, not ' . implode(', ', $extra));
            }
            $atLeast = $retried4xx['atLeast'] ?? 1;
            $most = max([0, ...array_map(static fn ($t) => count($t['delays_ms']), $report['threads'])]);
            if ($most < $atLeast) {
                $problems[] = "expected a 4xx retried at least $atLeast times in one thread, the most was $most";
            }
            $backoff = $retried4xx['backoff'] ?? null;
            if ($backoff !== null && ($summary['backoff'] === true) !== $backoff) {
                $problems[] = $backoff ? 'expected growing delays after each 4xx (backoff)'
                    : 'expected no backoff, the delays grew';
            }
        } elseif ($retried4xx !== null && $summary['retried_4xx'] !== $retried4xx) {
            $problems[] = $retried4xx ? 'expected a retry after a 4xx' : 'expected no retry after a 4xx';
        }
        if ($retried5xx !== null && $summary['retried_5xx'] !== $retried5xx) {
            $problems[] = $retried5xx ? 'expected a retry after a 5xx'
                : 'expected no retry after a 5xx: ' . implode('; ', self::repeated5xx($report));
        }
        if ($gaveUpAfter5xx !== null && $summary['gave_up_after_5xx'] !== $gaveUpAfter5xx) {
            $problems[] = $gaveUpAfter5xx ? 'expected a 5xx given up on (tried once)' : 'expected no 5xx given up on';
        }
        if ($hammering !== null && $summary['hammering'] !== $hammering) {
            $problems[] = $hammering ? 'expected hammering'
                : 'expected no hammering (3 retries of a 4xx, each within 1 s)';
        }
        if ($violations !== null && $summary['violations'] !== $violations) {
            $found = array_map([self::class, 'finding'],
                array_values(array_filter($report['findings'], static fn ($f) => $f['severity'] === 'violation')));
            $problems[] = "expected $violations violations, got {$summary['violations']}"
                . ($found !== [] ? ': ' . implode('; ', $found) : '');
        }
        if ($problems !== []) {
            self::fail(self::who($report) . ': ' . implode("\n", $problems) . "\n" . self::describe($report));
        }
        if (class_exists(\PHPUnit\Framework\Assert::class)) {
            \PHPUnit\Framework\Assert::assertTrue(true); // one assertion, for PHPUnit's count
        }
        return $report;
    }

    /** describe - what the client did: each thread's tries (code, stage, delay before it), then its findings */
    public static function describe(array $report): string
    {
        $lines = ['what ' . self::who($report) . " did ({$report['sessions']} sessions):"];
        foreach ($report['threads'] as $t) {
            $what = !empty($t['connection']) ? 'connections'
                : ($t['sender'] ?: '<>') . ' -> ' . ($t['rcpt'] ?: '(no rcpt)');
            $tries = array_map(static fn ($x) => ($x['delay_ms'] !== null ? "after {$x['delay_ms']} ms " : '')
                . "{$x['code']} at {$x['stage']}", $t['tries']);
            $backoff = $t['backoff'] === null ? '-' : ($t['backoff'] ? 'yes' : 'no');
            $lines[] = "  $what: " . implode(', ', $tries) . " ({$t['outcome']}; retries {$t['retries']}, "
                . 'delays after 4xx [' . implode(', ', $t['delays_ms']) . "] ms, backoff $backoff, hammering "
                . ($t['hammering'] ? 'yes' : 'no') . ')';
        }
        foreach ($report['findings'] as $f) {
            $lines[] = '  finding ' . self::finding($f);
        }
        return implode("\n", $lines);
    }

    /** fail - PHPUnit's failure when PHPUnit is loaded, else the package's own */
    public static function fail(string $message): never
    {
        if (class_exists(\PHPUnit\Framework\Assert::class)) {
            \PHPUnit\Framework\Assert::fail($message);
        }
        throw new ClientAssertionError($message);
    }

    private static function who(array $report): string
    {
        return isset($report['scope']) ? "scope {$report['scope']}" : "client {$report['client']}";
    }

    private static function finding(array $f): string
    {
        return "{$f['id']} ({$f['severity']}, {$f['reference']}) x{$f['count']}, session {$f['session']}: "
            . self::quoted($f['line']);
    }

    /** @return list<string> each 5xx tried again, with the delay before the new try */
    private static function repeated5xx(array $report): array
    {
        $out = [];
        foreach ($report['threads'] as $t) {
            for ($i = 1; $i < count($t['tries']); $i++) {
                $before = $t['tries'][$i - 1];
                if ($before['code'] >= 500) {
                    $out[] = self::quoted($before['reply'])
                        . " (at {$before['stage']}) tried again after {$t['tries'][$i]['delay_ms']} ms";
                }
            }
        }
        return $out;
    }

    private static function quoted(string $text): string
    {
        return json_encode($text, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
    }
}
