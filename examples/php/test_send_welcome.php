<?php
/*
 * test_send_welcome.php - the application's mail code against a running smtpfault (php test_send_welcome.php).
 *
 * It starts nothing: SMTPFAULT_SMTP (default 127.0.0.1:2525) is the server's SMTP listener and
 * SMTPFAULT_ADMIN (default 127.0.0.1:2580) its admin socket. Each test puts a shipped profile in force by
 * name, checks what the application does, and resets the server afterwards. Exits 1 when a test fails.
 */
require __DIR__ . '/send_welcome.php';

function host_port($value)
{
    $i = strrpos($value, ':');
    return [trim(substr($value, 0, $i), '[]'), (int)substr($value, $i + 1)];
}

$SMTP = host_port(getenv('SMTPFAULT_SMTP') ?: '127.0.0.1:2525');
$ADMIN = host_port(getenv('SMTPFAULT_ADMIN') ?: '127.0.0.1:2580');

/* one request to the admin socket (newline-delimited JSON); its response */
function admin(array $request)
{
    global $ADMIN;
    $s = stream_socket_client("tcp://{$ADMIN[0]}:{$ADMIN[1]}", $errno, $errstr, 10);
    if ($s === false) {
        throw new RuntimeException("admin socket: $errstr");
    }
    stream_set_timeout($s, 10);
    fwrite($s, json_encode($request) . "\n");
    $response = json_decode(fgets($s), true);
    fclose($s);
    if (empty($response['ok'])) {
        throw new RuntimeException("admin {$request['cmd']}: " . json_encode($response['error'] ?? $response));
    }
    return $response;
}

function check($condition, $what)
{
    if (!$condition) {
        throw new RuntimeException("expected: $what");
    }
}

/* the MailError send_welcome throws, or a failure when it does not */
function expect_mail_error($to, array $config)
{
    try {
        send_welcome($to, $config);
    } catch (MailError $e) {
        return $e;
    }
    throw new RuntimeException('expected a MailError');
}

// Trust the server's test CA, as the app would trust a real one (PHP wants it in a file).
$cafile = tempnam(sys_get_temp_dir(), 'smtpfault-ca-');
file_put_contents($cafile, admin(['cmd' => 'tls.ca'])['pem']);

$config = ['host' => $SMTP[0], 'port' => $SMTP[1], 'user' => 'app@example.com', 'pass' => 'app-password',
           'cafile' => $cafile, 'retry_delay_ms' => 100, 'timeout' => 5];

$tests = [
    'a welcome mail arrives' => function () use ($config) {
        check(send_welcome('new.user@example.org', $config) === 1, 'one attempt');
        $m = admin(['cmd' => 'messages.wait', 'to' => 'new.user@example.org', 'timeout' => 5])['message'];
        check($m['recipients'] === ['new.user@example.org'], 'the recipient');
    },
    'a refused login (535) is shown to the user and not retried' => function () use ($config) {
        admin(['cmd' => 'profile.load', 'name' => 'auth-535-wrong-password']);
        $e = expect_mail_error('new.user@example.org', ['pass' => 'not-the-password'] + $config);
        check($e->kind === 'auth', "kind auth, got {$e->kind}");
        check($e->attempts === 1, 'no retry');
        check(strpos($e->reply, '535 5.7.8') !== false, "the 535 reply, got {$e->reply}");
    },
    'a 421 greeting is retried, then reported as temporary' => function () use ($config) {
        admin(['cmd' => 'profile.load', 'name' => 'server-421-try-again-later']);
        $e = expect_mail_error('new.user@example.org', ['attempts' => 3] + $config);
        check($e->kind === 'temporary', "kind temporary, got {$e->kind}");
        check($e->attempts === 3, 'three attempts');
        check(admin(['cmd' => 'stats'])['faults']['fired'] === 3, 'three refused connections');
    },
    'a message refused after DATA (554) is permanent' => function () use ($config) {
        admin(['cmd' => 'profile.load', 'name' => 'data-554-transaction-failed-blacklisted']);
        $e = expect_mail_error('new.user@example.org', $config);
        check($e->kind === 'rejected', "kind rejected, got {$e->kind}");
        check($e->attempts === 1, 'no retry');
        check(admin(['cmd' => 'messages.list'])['messages'] === [], 'nothing kept');
    },
];

$failed = 0;
foreach ($tests as $name => $test) {
    try {
        $test();
        echo "ok - $name\n";
    } catch (Throwable $e) {
        $failed++;
        echo "not ok - $name: {$e->getMessage()}\n";
    } finally {
        admin(['cmd' => 'reset']);
    }
}
unlink($cafile);
echo $failed ? "$failed of " . count($tests) . " failed\n" : "all " . count($tests) . " passed\n";
exit($failed ? 1 : 0);
