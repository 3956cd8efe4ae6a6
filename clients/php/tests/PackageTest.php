<?php
declare(strict_types=1);

namespace Smtpfault\Tests;

use PHPUnit\Framework\TestCase;

/**
 * The package as a user gets it: `composer archive` of it, installed offline (an artifact repository,
 * packagist.org off) into an empty project, where the PHP quick start of docs/clients.md runs under PHPUnit.
 */
final class PackageTest extends TestCase
{
    private const PACKAGE = __DIR__ . '/..';
    private const DOC = __DIR__ . '/../../../docs/clients.md';

    private string $tmp;

    protected function setUp(): void
    {
        $this->tmp = sys_get_temp_dir() . '/smtpfault-package-' . bin2hex(random_bytes(6));
        mkdir("{$this->tmp}/artifacts", 0700, true);
        mkdir("{$this->tmp}/project/tests", 0700, true);
    }

    protected function tearDown(): void
    {
        exec('rm -rf ' . escapeshellarg($this->tmp));
    }

    /** command - run a command in $cwd with COMPOSER_HOME in this test's directory; its output, after exit 0 */
    private function command(array $argv, string $cwd): string
    {
        $env = getenv();
        $env['COMPOSER_HOME'] = "{$this->tmp}/composer-home";
        $env['COMPOSER_CACHE_DIR'] = "{$this->tmp}/composer-cache";
        unset($env['SMTPFAULT_ADMIN']);
        $proc = proc_open($argv, [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['redirect', 1]],
                          $pipes, $cwd, $env);
        $out = stream_get_contents($pipes[1]);
        fclose($pipes[1]);
        $status = proc_close($proc);
        $this->assertSame(0, $status, implode(' ', $argv) . " in $cwd exited $status:\n$out");
        return $out;
    }

    /** the PHP quick start of docs/clients.md: the first php block of its ## PHP section */
    private static function quickStart(): string
    {
        $section = explode("\n## ", explode("\n## PHP\n", file_get_contents(self::DOC), 2)[1], 2)[0];
        preg_match('/^```php\n(.*?)^```/sm', $section, $m);
        return $m[1];
    }

    public function testArchiveInstallsIntoAnEmptyProjectAndTheQuickStartRuns(): void
    {
        $this->command(['composer', 'archive', '--no-interaction', '--format=zip', "--dir={$this->tmp}/artifacts",
                    '--file=smtpfault-0.1.0'], self::PACKAGE);
        $this->assertFileExists("{$this->tmp}/artifacts/smtpfault-0.1.0.zip");

        $project = "{$this->tmp}/project";
        file_put_contents("$project/composer.json", json_encode([
            'require' => ['smtpfault/smtpfault' => '0.1.0'],
            'repositories' => [['type' => 'artifact', 'url' => "{$this->tmp}/artifacts"], ['packagist.org' => false]],
        ], JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES));
        $this->command(['composer', 'install', '--no-interaction', '--no-progress'], $project);
        $this->assertFileExists("$project/vendor/smtpfault/smtpfault/src/Client.php");
        $this->assertFileDoesNotExist("$project/vendor/smtpfault/smtpfault/tests"); // archive.exclude

        // PHPMailer and PHPUnit come from Debian here; a project would have them from composer too.
        file_put_contents("$project/tests/bootstrap.php", "<?php\nrequire __DIR__ . '/../vendor/autoload.php';\n"
                                                        . "require '/usr/share/php/libphp-phpmailer/autoload.php';\n");
        file_put_contents("$project/tests/SignupTest.php", self::quickStart());
        $out = $this->command(['phpunit', '--bootstrap', 'tests/bootstrap.php', 'tests'], $project);
        $this->assertMatchesRegularExpression('/^OK \(2 tests, /m', $out);
    }
}
