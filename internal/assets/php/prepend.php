<?php
/*
 * toppcloud's PHP prelude, run before every request of a PHP instance
 * (php-fpm's auto_prepend_file). It gives PHP applications what the
 * original's master-runner.php and functions.php gave them:
 *
 * - the SILVER_* and CONFIG_* variables in $_SERVER and getenv() (they come
 *   from the php-fpm pool's env[] entries; nothing to do here);
 * - the constant SILVER_SECRET, the app's own secret, read from
 *   $TOPPCLOUD_SECRET_FILE (the secret is never in the environment);
 * - $silver_base (the instance directory) and $silver_php_root;
 * - silver_next_path() and silver_call_next(), which a front controller
 *   uses to find the PHP file a request names under php_root;
 * - $_SERVER['SILVERLINING_INTERNAL'] / ['SILVERLINING_UPDATE'] set to true
 *   for the agent's update_fetch requests, which prove themselves with the
 *   instance's token; the header is removed so no script sees it.
 */

$silver_base = getenv('TOPPCLOUD_INSTANCE_DIR');
$silver_php_root = (string) getenv('TOPPCLOUD_PHP_ROOT');

if (!defined('SILVER_SECRET')) {
    $toppcloud_secret_file = getenv('TOPPCLOUD_SECRET_FILE');
    $toppcloud_secret = $toppcloud_secret_file ? @file_get_contents($toppcloud_secret_file) : false;
    define('SILVER_SECRET', $toppcloud_secret === false ? '' : trim($toppcloud_secret));
    unset($toppcloud_secret, $toppcloud_secret_file);
}

$toppcloud_token = (string) getenv('TOPPCLOUD_INTERNAL_TOKEN');
$toppcloud_claim = isset($_SERVER['HTTP_X_TOPPCLOUD_INTERNAL']) ? (string) $_SERVER['HTTP_X_TOPPCLOUD_INTERNAL'] : '';
unset($_SERVER['HTTP_X_TOPPCLOUD_INTERNAL'], $_SERVER['TOPPCLOUD_INTERNAL_TOKEN']);
$_SERVER['SILVERLINING_INTERNAL'] = $_SERVER['SILVERLINING_UPDATE'] =
    ($toppcloud_token !== '' && hash_equals($toppcloud_token, $toppcloud_claim));
unset($toppcloud_token, $toppcloud_claim);

if (!isset($_SERVER['SILVER_CANONICAL_HOSTNAME']) || $_SERVER['SILVER_CANONICAL_HOSTNAME'] === '') {
    $_SERVER['SILVER_CANONICAL_HOSTNAME'] = isset($_SERVER['HTTP_HOST']) ? $_SERVER['HTTP_HOST'] : '';
}

if (!function_exists('silver_next_path')) {
    /*
     * The file under php_root that the request path names: a directory
     * holding index.php gives that index.php (or a redirect adding the
     * slash); a missing file gives $default, or NULL.
     */
    function silver_next_path($default = NULL, $url_path = NULL) {
        global $silver_base, $silver_php_root;
        if (!$url_path) {
            if (isset($_SERVER['SILVER_SCRIPT_NAME'])) {
                $url_path = $_SERVER['SILVER_SCRIPT_NAME'];
            } else {
                $url_path = (string) parse_url(isset($_SERVER['REQUEST_URI']) ? $_SERVER['REQUEST_URI'] : '/', PHP_URL_PATH);
                $mount = isset($_SERVER['SILVER_MATCH_PATH']) ? rtrim($_SERVER['SILVER_MATCH_PATH'], '/') : '';
                if ($mount !== '' && strpos($url_path, $mount) === 0) {
                    $url_path = substr($url_path, strlen($mount));
                }
            }
        }
        $url_path = rawurldecode($url_path);
        if (strpos('/' . $url_path . '/', '/../') !== false) {
            return $default ? $default : NULL;
        }
        $path = rtrim("{$silver_base}/{$silver_php_root}", '/') . '/' . ltrim($url_path, '/');
        if (is_dir($path) && file_exists(rtrim($path, '/') . '/index.php')) {
            if (substr($url_path, -1) !== '/') {
                header('Location: ' . $url_path . '/', true, 301);
                exit();
            }
            $path = rtrim($path, '/') . '/index.php';
        }
        if (!is_file($path)) {
            return $default ? $default : NULL;
        }
        return $path;
    }

    /* silver_next_path, then chdir to the file's directory and set PHP_SELF. */
    function silver_call_next($default = NULL, $url_path = NULL) {
        $path = silver_next_path($default, $url_path);
        if ($path) {
            chdir(dirname($path));
        }
        $_SERVER['PHP_SELF'] = $path;
        return $path;
    }
}
