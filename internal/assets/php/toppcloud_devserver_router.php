<?php
/*
 * toppcloud serve's router for PHP's built-in server (php -S), used when
 * php-cgi is not installed. serve's front server has already decided what
 * runs, as a node's router does, and says so in X-Toppcloud-Devserver-*
 * headers (it deletes any a client sends). This script gives the chosen
 * script the CGI variables php-fpm gives it on a node, and runs it.
 * The built-in server does not apply auto_prepend_file to its router, so
 * the node's prelude is included here, before anything else.
 */

require_once __DIR__ . '/prepend.php';

$toppcloud_script = isset($_SERVER['HTTP_X_TOPPCLOUD_DEVSERVER_SCRIPT_FILENAME'])
    ? $_SERVER['HTTP_X_TOPPCLOUD_DEVSERVER_SCRIPT_FILENAME'] : '';
$toppcloud_vars = array(
    'SCRIPT_NAME' => 'HTTP_X_TOPPCLOUD_DEVSERVER_SCRIPT_NAME',
    'PATH_INFO' => 'HTTP_X_TOPPCLOUD_DEVSERVER_PATH_INFO',
    'DOCUMENT_ROOT' => 'HTTP_X_TOPPCLOUD_DEVSERVER_DOCUMENT_ROOT',
);
foreach ($toppcloud_vars as $toppcloud_name => $toppcloud_header) {
    $_SERVER[$toppcloud_name] = isset($_SERVER[$toppcloud_header]) ? $_SERVER[$toppcloud_header] : '';
    unset($_SERVER[$toppcloud_header]);
}
unset($_SERVER['HTTP_X_TOPPCLOUD_DEVSERVER_SCRIPT_FILENAME']);
if ($_SERVER['PATH_INFO'] === '') {
    unset($_SERVER['PATH_INFO']);
}
if ($toppcloud_script === '' || !is_file($toppcloud_script)) {
    http_response_code(404);
    echo "Not Found\n";
    return true;
}
// The application's variables are in $_SERVER on a node (php-fpm's
// env[] entries); the built-in server puts only the request's there.
foreach (getenv() as $toppcloud_name => $toppcloud_value) {
    if (strpos($toppcloud_name, 'SILVER_') === 0 || strpos($toppcloud_name, 'CONFIG_') === 0) {
        $_SERVER[$toppcloud_name] = $toppcloud_value;
    }
}
$_SERVER['SILVER_MATCH_PATH'] = '/';
$_SERVER['SCRIPT_FILENAME'] = $toppcloud_script;
$_SERVER['PHP_SELF'] = $_SERVER['SCRIPT_NAME'] . (isset($_SERVER['PATH_INFO']) ? $_SERVER['PATH_INFO'] : '');
unset($toppcloud_vars, $toppcloud_name, $toppcloud_header, $toppcloud_value);
chdir(dirname($toppcloud_script));
require $toppcloud_script;
return true;
