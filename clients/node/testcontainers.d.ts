// Type declarations of smtpfault/testcontainers.
import type { StartedTestContainer } from 'testcontainers';
import type { SmtpFault } from './index';

/** An SmtpFault connected to a container of smtpfault's image; close() also stops the container. */
export interface ContainerSmtpFault extends SmtpFault {
    container: StartedTestContainer;
}

export declare class SmtpfaultContainer {
    /** An image of smtpfault's Dockerfile (default 'smtpfault'). */
    constructor(image?: string);
    /** A shipped profile in force at start (SMTPFAULT_PROFILE). */
    withProfile(name: string): this;
    /** More SMTPFAULT_* options for the server. */
    withEnvironment(env: Record<string, string>): this;
    /** The admin token (default: a random one). */
    withToken(token: string): this;
    /** How many ports scopes may take (default 16, published from 30000 up). */
    withScopePorts(count: number): this;
    withStartupTimeout(ms: number): this;
    start(): Promise<ContainerSmtpFault>;
}
