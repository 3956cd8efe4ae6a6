<?php
// Load a profile, wait for a message, reset: smtpfault's admin socket from PHP (stream_socket_client).
$addr = getenv('SMTPFAULT_ADMIN') ?: '127.0.0.1:2580'; // HOST:PORT or unix:PATH
$sock = stream_socket_client(str_starts_with($addr, 'unix:') ? 'unix://' . substr($addr, 5) : "tcp://$addr",
                             $errno, $errstr, 10) or exit("cannot connect: $errstr\n");
stream_set_timeout($sock, 30);

function request($sock, array $req): array {
    fwrite($sock, json_encode($req) . "\n");
    return json_decode(fgets($sock), true);
}

request($sock, ['cmd' => 'profile.load', 'profile' => ['name' => 'flaky-rcpt', 'rules' => [
    ['when' => ['stage' => 'rcpt', 'rcpt' => '*@example.com', 'times' => 1],
     'do' => ['reply' => '451 4.3.0 Try again later']]]]]);
// ... the code under test sends its mail here ...
$r = request($sock, ['cmd' => 'messages.wait', 'to' => '*@example.com', 'timeout' => 20]);
$r['ok'] or exit("{$r['error']['code']}: {$r['error']['message']}\n");
echo "got {$r['message']['id']} for ", implode(',', $r['message']['recipients']), "\n";
request($sock, ['cmd' => 'reset']);
