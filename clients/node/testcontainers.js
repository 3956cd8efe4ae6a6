'use strict';
/*
 * smtpfault/testcontainers - smtpfault's container image as a Testcontainers container:
 *
 *   const { SmtpfaultContainer } = require('smtpfault/testcontainers');
 *   const sf = await new SmtpfaultContainer('smtpfault').start();   // a connected SmtpFault
 *   ...
 *   await sf.close();                                                // and the container stops
 *
 * The admin socket is opened on the container's network with a random token, and published with the SMTP
 * listeners and a range of scope ports; every listener the SmtpFault and its scopes report is mapped to
 * the published port. Needs the testcontainers package (npm install --save-dev testcontainers).
 */
const crypto = require('node:crypto');
const { SmtpFault } = require('./index');

/* loadTestcontainers() - the testcontainers package, or an error that says how to install it */
function loadTestcontainers() {
    try {
        return require('testcontainers');
    } catch (err) {
        throw new Error('smtpfault/testcontainers needs the testcontainers package: npm install --save-dev ' +
            `testcontainers (${err.message.split('\n')[0]})`);
    }
}

const PORTS = { smtp: 2525, submission: 2587, smtps: 2465, admin: 2580 };
const SCOPE_PORT_LOW = 30000;
const DEFAULT_SCOPE_PORTS = 16; // scopes with all three listeners at once: 5
const READY_LINE = /smtpfault \S+ ready/;

class SmtpfaultContainer {
    /* image: an image of smtpfault's Dockerfile (default 'smtpfault', built with docker/podman build -t smtpfault .) */
    constructor(image = 'smtpfault') {
        this.image = image;
        this.token = crypto.randomBytes(16).toString('hex');
        this.environment = {};
        this.scopePorts = DEFAULT_SCOPE_PORTS;
        this.startupTimeoutMs = 60000;
    }

    /* withProfile(name) - a shipped profile in force at start (SMTPFAULT_PROFILE) */
    withProfile(name) {
        this.environment.SMTPFAULT_PROFILE = name;
        return this;
    }

    /* withEnvironment(env) - more SMTPFAULT_* options for the server */
    withEnvironment(env) {
        Object.assign(this.environment, env);
        return this;
    }

    /* withToken(token) - the admin token (default: a random one) */
    withToken(token) {
        this.token = token;
        return this;
    }

    /* withScopePorts(count) - how many ports scopes may take (published as 30000 upwards) */
    withScopePorts(count) {
        this.scopePorts = count;
        return this;
    }

    withStartupTimeout(ms) {
        this.startupTimeoutMs = ms;
        return this;
    }

    /* start() - the container, started and ready, as a connected SmtpFault; its close() stops the container */
    async start() {
        const { GenericContainer, Wait } = loadTestcontainers();
        const scopePorts = [];
        for (let i = 0; i < this.scopePorts; i++) {
            scopePorts.push(SCOPE_PORT_LOW + i);
        }
        const env = {
            SMTPFAULT_ADMIN: `0.0.0.0:${PORTS.admin}`,
            SMTPFAULT_ADMIN_REMOTE: 'true',
            SMTPFAULT_ADMIN_TOKEN: this.token,
            ...(scopePorts.length ? { SMTPFAULT_SCOPE_PORTS: `${scopePorts[0]}-${scopePorts[scopePorts.length - 1]}` } : {}),
            ...this.environment
        };
        const container = await new GenericContainer(this.image)
            .withEnvironment(env)
            .withExposedPorts(...Object.values(PORTS), ...scopePorts)
            .withWaitStrategy(Wait.forLogMessage(READY_LINE))
            .withStartupTimeout(this.startupTimeoutMs)
            .start();
        try {
            // The test certificate names localhost, 127.0.0.1 and ::1: an IP keeps clients off a lookup.
            const host = container.getHost() === 'localhost' ? '127.0.0.1' : container.getHost();
            const sf = await SmtpFault.connect({
                admin: `${host}:${container.getMappedPort(PORTS.admin)}`,
                token: this.token,
                mapAddress: ({ port }) => ({ host, port: container.getMappedPort(port) })
            });
            const closeConnection = sf.close.bind(sf);
            sf.container = container;
            sf.close = async () => {
                await closeConnection();
                await container.stop();
                return null;
            };
            return sf;
        } catch (err) {
            await container.stop();
            throw err;
        }
    }
}

module.exports = { SmtpfaultContainer };
