// Type declarations of smtpfault (CommonJS and ESM).

/** A listener as a client on this machine reaches it. */
export interface Listener {
    host: string;
    port: number;
    /** HOST:PORT, or [IPV6]:PORT */
    address: string;
}

/** A fault profile (docs/profiles.md): rules, limits and server settings. */
export interface Profile {
    name?: string;
    description?: string;
    rules?: Array<Record<string, unknown>>;
    [key: string]: unknown;
}

/** A profile: an object sent inline, a file on this machine (has a path separator or ends with .json), or a shipped profile's name. */
export type ProfileSource = Profile | string;

/** What profile.load, profile.validate and reset answer. */
export interface ProfileSummary {
    name: string;
    rules: number;
    stages: string[];
    listeners: string[];
    settings: string[];
    valid?: boolean;
    cleared?: number;
    [key: string]: unknown;
}

/** A captured message's envelope (the same object as ID.json in --store-dir). */
export interface Envelope {
    id: string;
    sender: string;
    recipients: string[];
    helo: string;
    client: string;
    listener: 'smtp' | 'submission' | 'smtps';
    session: number;
    tls: Record<string, unknown> | null;
    auth: string | null;
    size: number;
    smtputf8: boolean;
    declared_size: number | null;
    started: string;
    received: string;
    [key: string]: unknown;
}

/** A captured message: its envelope, header fields in order, body, and the Subject header (null when absent). */
export interface Message extends Envelope {
    headers: Array<[string, string]>;
    /** The body after the blank line, or null when it is not UTF-8 (then body_base64 holds it). */
    body: string | null;
    body_base64?: string;
    /** With {raw: true}: the message as received, in base64. */
    raw_base64?: string;
    subject: string | null;
}

export interface MessageFilter {
    /** A glob the recipients are matched against (without regard to case). */
    to?: string;
    /** A glob the sender is matched against ("" is the null sender). */
    from?: string;
    /** A glob the Subject field is matched against (unfolded, as sent, without regard to case). */
    subject?: string;
    /** Only messages with a later id. */
    since?: string;
}

export interface Session {
    id: number;
    client: string;
    listener: string;
    live: boolean;
    state: string;
    helo: string | null;
    tls: Record<string, unknown> | null;
    auth: string | null;
    started: string;
    ended?: string;
    close_reason?: string;
    bytes_in: number;
    bytes_out: number;
    messages: number;
    transcript?: Array<{ time: string; event: string; text: string }>;
    transcript_dropped?: number;
    [key: string]: unknown;
}

/** A session event: connect, tls, command, reply, auth, fault, message, close; scope_end ends a scope's stream. */
export interface SmtpEvent {
    event: string;
    session?: number;
    time?: string;
    text?: string;
    scope?: string;
}

/** events(): an async iterable of events, subscribed as soon as it is made. */
export interface EventStream extends AsyncIterableIterator<SmtpEvent> {
    /** Resolves once the server sends events to this stream. */
    ready: Promise<void>;
    close(): Promise<void>;
}

/** The commands on a server's state: an SmtpFault's (its own listeners) or a Scope's. */
export declare class Target {
    /** The PEM of the CA clients verify the server's certificate with; null with --no-tls. */
    ca: string | null;
    smtp: Listener | null;
    submission: Listener | null;
    smtps: Listener | null;
    stats(): Promise<Record<string, any>>;
    loadProfile(profile: ProfileSource, options?: { source?: string }): Promise<ProfileSummary>;
    validateProfile(profile: ProfileSource, options?: { source?: string }): Promise<ProfileSummary>;
    getProfile(): Promise<ProfileSummary & { profile: Profile }>;
    clearProfile(): Promise<void>;
    messages(filter?: MessageFilter & { limit?: number }): Promise<Envelope[]>;
    message(id: string, options?: { raw?: boolean }): Promise<Message>;
    deleteMessage(id: string): Promise<void>;
    /** How many messages were forgotten. */
    clearMessages(): Promise<number>;
    /** The first matching message, kept already or arriving within timeout ms (default 10000); else SmtpFaultError 'timeout'. */
    waitForMessage(filter?: MessageFilter & { timeout?: number; raw?: boolean }): Promise<Message>;
    sessions(): Promise<{ live: Session[]; recent: Session[] }>;
    session(id: number): Promise<Session>;
    events(): EventStream;
    reset(): Promise<ProfileSummary & { cleared: number }>;
}

export interface ScopeOptions {
    /** An object, a file on this machine, or a shipped profile's name. */
    profile?: ProfileSource;
    /** A shipped profile, by name. */
    name?: string;
    /** A profile file on the server's side. */
    path?: string;
    /** The name errors of an inline profile are reported under. */
    source?: string;
    /** The listeners the scope gets (default: those the server runs). */
    listeners?: Array<'smtp' | 'submission' | 'smtps'>;
    /** Outlive the SmtpFault's connection (until close() or the server stops). */
    keep?: boolean;
}

/** A finding of client.report or sessions.get (docs/client-checks.md). */
export interface Finding {
    id: string;
    severity: 'violation' | 'risk' | 'info';
    reference: string;
    count: number;
    time: string;
    session: number;
    line: string;
}

/** client.report: a client's (or a scope's) findings and retry story. */
export interface ClientReport {
    client?: string;
    scope?: string;
    sessions: number;
    first: string;
    last: string;
    summary: {
        retried_4xx: boolean; backoff: boolean | null; hammering: boolean;
        retried_5xx: boolean; gave_up_after_5xx: boolean; violations: number;
    };
    findings: Finding[];
    threads: Array<{
        sender?: string; rcpt?: string; connection?: boolean;
        tries: Array<{ session: number; time: string; replied: string; code: number; stage: string; reply: string;
            delay_ms: number | null; greylist_ms?: number; limited?: boolean }>;
        dropped: number; retries: number; delays_ms: number[]; backoff: boolean | null; hammering: boolean;
        outcome: 'delivered' | 'deferred' | 'refused';
    }>;
}

/** What assertClient checks: each key given must hold. */
export interface ClientExpectation {
    /** true/false: a 4xx was (not) retried; {atLeast, backoff}: one thread retried a 4xx atLeast times, its delays growing (or not). */
    retried4xx?: boolean | { atLeast?: number; backoff?: boolean };
    retried5xx?: boolean;
    gaveUpAfter5xx?: boolean;
    hammering?: boolean;
    /** How many kinds of RFC violation (0: none). */
    violations?: number;
}

/** Throws an AssertionError whose message is the client's timeline unless the report shows what expect says. */
export declare function assertReport(report: ClientReport, expect: ClientExpectation): ClientReport;
/** What the client did: each thread's tries with their codes and delays, and the findings. */
export declare function describe(report: ClientReport): string;

/** A virtual server inside the running one: its own ports, profile, messages, sessions and counters. */
export declare class Scope extends Target {
    readonly id: string;
    readonly keep: boolean;
    /** client.report of the scope: every connection to its listeners as one client's story. */
    report(): Promise<ClientReport>;
    /** Waits for the scope's open sessions to end (5 s at most), then assertReport on its report. */
    assertClient(expect: ClientExpectation): Promise<ClientReport>;
    /** scope.delete: the ports refuse, the sessions close, the messages are gone. */
    close(): Promise<void>;
}

export interface StartOptions {
    /** The binary (default: SMTPFAULT_BIN, else smtpfault on PATH). */
    bin?: string;
    /** More server options, e.g. ['--user', 'app@example.com:secret']. */
    args?: string[];
    /** More environment variables for the server (SMTPFAULT_* of this process are not passed, except SMTPFAULT_PROFILES). */
    env?: Record<string, string>;
    /** Require this admin token. */
    token?: string;
    /** 'pipe' (default: kept, see log()) or 'inherit' (the transcript on this process's stderr). */
    log?: 'pipe' | 'inherit';
    startTimeoutMs?: number;
}

export interface ConnectOptions {
    /** HOST:PORT, [IPV6]:PORT or unix:PATH (default SMTPFAULT_ADMIN, else 127.0.0.1:2580). */
    admin?: string;
    /** Default SMTPFAULT_ADMIN_TOKEN. */
    token?: string;
    /** Where this machine reaches a listener the server reports (e.g. a container's published port). */
    mapAddress?: (listener: { name: string; host: string; port: number }) => { host: string; port: number };
}

/** A running smtpfault: started here (start) or already running (connect). */
export declare class SmtpFault extends Target {
    static start(options?: StartOptions): Promise<SmtpFault>;
    static connect(options?: ConnectOptions): Promise<SmtpFault>;
    /** The admin socket: a listener, or unix:PATH. */
    readonly admin: Listener | string;
    /** The process id of a server started here, else null. */
    readonly pid: number | null;
    ping(): Promise<boolean>;
    version(): Promise<{ version: string; [key: string]: string }>;
    createScope(options?: ScopeOptions): Promise<Scope>;
    /** A Scope for a scope that exists (one created with keep through another connection). */
    scope(id: string): Promise<Scope>;
    /** Every scope of the server (scope.list). */
    scopes(): Promise<Array<Record<string, any>>>;
    /** client.report of a client address on the server's own listeners; without one, the addresses with a story. */
    report(): Promise<string[]>;
    report(client: string): Promise<ClientReport>;
    /** Scope's assertClient for a client address on the server's own listeners. */
    assertClient(client: string, expect: ClientExpectation): Promise<ClientReport>;
    /** Ends the admin connection (and the scopes it created); stops a server started here. Its exit code or signal. */
    close(): Promise<number | string | null>;
    /** What a server started here wrote on stderr lately. */
    log(): string;
}

/** Every failure: code is the admin error code (not_found, bad_argument, invalid_profile, timeout, unauthorized, ...), or disconnected / start_failed. */
export declare class SmtpFaultError extends Error {
    readonly code: string;
    /** invalid_profile: every error of the profile, each starting with its JSON path. */
    readonly errors: string[];
    readonly response: Record<string, any> | null;
    readonly command: string | null;
}
