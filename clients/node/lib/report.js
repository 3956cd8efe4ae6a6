'use strict';
/*
 * report.js - assertReport: check a client.report (the findings and retry story of a client or a scope)
 * against what a test expects, failing with an AssertionError whose message is the client's timeline.
 */
const { AssertionError } = require('node:assert');

const EXPECTS = ['retried4xx', 'retried5xx', 'gaveUpAfter5xx', 'hammering', 'violations'];

/*
 * assertReport(report, expect) - throw unless the report shows each expectation given: retried4xx (true,
 * false, or {atLeast, backoff}: one thread retried a 4xx atLeast times, its delays growing or not),
 * retried5xx, gaveUpAfter5xx, hammering (booleans), violations (how many kinds). Returns the report.
 */
function assertReport(report, expect = {}) {
    const unknown = Object.keys(expect).filter(k => !EXPECTS.includes(k));
    if (unknown.length) {
        throw new TypeError(`assertClient expects ${EXPECTS.join(', ')}, not ${unknown.join(', ')}`);
    }
    const { summary } = report;
    const problems = [];
    const { retried4xx, retried5xx, gaveUpAfter5xx, hammering, violations } = expect;
    if (retried4xx !== null && typeof retried4xx === 'object') {
        const extra = Object.keys(retried4xx).filter(k => k !== 'atLeast' && k !== 'backoff');
        if (extra.length) {
            throw new TypeError(`retried4xx takes atLeast and backoff, not ${extra.join(', ')}`);
        }
        const atLeast = retried4xx.atLeast === undefined ? 1 : retried4xx.atLeast;
        const most = Math.max(0, ...report.threads.map(t => t.delays_ms.length));
        if (most < atLeast) {
            problems.push(`expected a 4xx retried at least ${atLeast} times in one thread, the most was ${most}`);
        }
        const { backoff } = retried4xx;
        if (backoff !== undefined && (summary.backoff === true) !== backoff) {
            problems.push(backoff ? 'expected growing delays after each 4xx (backoff)'
                : 'expected no backoff, the delays grew');
        }
    } else if (retried4xx !== undefined && summary.retried_4xx !== retried4xx) {
        problems.push(retried4xx ? 'expected a retry after a 4xx' : 'expected no retry after a 4xx');
    }
    if (retried5xx !== undefined && summary.retried_5xx !== retried5xx) {
        problems.push(retried5xx ? 'expected a retry after a 5xx'
            : `expected no retry after a 5xx: ${repeated5xx(report).join('; ')}`);
    }
    if (gaveUpAfter5xx !== undefined && summary.gave_up_after_5xx !== gaveUpAfter5xx) {
        problems.push(gaveUpAfter5xx ? 'expected a 5xx given up on (tried once)' : 'expected no 5xx given up on');
    }
    if (hammering !== undefined && summary.hammering !== hammering) {
        problems.push(hammering ? 'expected hammering' : 'expected no hammering (3 retries of a 4xx, each within 1 s)');
    }
    if (violations !== undefined && summary.violations !== violations) {
        const found = report.findings.filter(f => f.severity === 'violation').map(finding);
        problems.push(`expected ${violations} violations, got ${summary.violations}` +
            (found.length ? `: ${found.join('; ')}` : ''));
    }
    if (problems.length) {
        throw new AssertionError({ message: `${who(report)}: ${problems.join('\n')}\n${describe(report)}` });
    }
    return report;
}

/* describe(report) - what the client did: each thread's tries (code, stage, delay before it), its findings */
function describe(report) {
    const lines = [`what ${who(report)} did (${report.sessions} sessions):`];
    for (const t of report.threads) {
        const what = t.connection ? 'connections' : `${t.sender || '<>'} -> ${t.rcpt || '(no rcpt)'}`;
        const tries = t.tries.map(x =>
            (x.delay_ms !== null ? `after ${x.delay_ms} ms ` : '') + `${x.code} at ${x.stage}`);
        const backoff = t.backoff === null ? '-' : t.backoff ? 'yes' : 'no';
        lines.push(`  ${what}: ${tries.join(', ')} (${t.outcome}; retries ${t.retries}, delays after 4xx ` +
            `[${t.delays_ms.join(', ')}] ms, backoff ${backoff}, hammering ${t.hammering ? 'yes' : 'no'})`);
    }
    for (const f of report.findings) {
        lines.push(`  finding ${finding(f)}`);
    }
    return lines.join('\n');
}

function who(report) {
    return report.scope !== undefined ? `scope ${report.scope}` : `client ${report.client}`;
}

function finding(f) {
    return `${f.id} (${f.severity}, ${f.reference}) x${f.count}, session ${f.session}: ${JSON.stringify(f.line)}`;
}

/* repeated5xx(report) - each 5xx tried again, with the delay before the new try */
function repeated5xx(report) {
    const out = [];
    for (const t of report.threads) {
        for (let i = 1; i < t.tries.length; i++) {
            const before = t.tries[i - 1];
            if (before.code >= 500) {
                out.push(`${JSON.stringify(before.reply)} (at ${before.stage}) ` +
                    `tried again after ${t.tries[i].delay_ms} ms`);
            }
        }
    }
    return out;
}

module.exports = { assertReport, describe };
