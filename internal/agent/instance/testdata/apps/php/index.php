<?php
// Front controller of the PHP test app.
$path = silver_call_next();
if ($path && basename($path) !== 'index.php') {
    include $path;
    exit;
}
header('Content-Type: application/json');
if (isset($_GET['status'])) {
    http_response_code((int) $_GET['status']);
}
echo json_encode(array(
    'secret' => SILVER_SECRET,
    'instance' => getenv('SILVER_INSTANCE_NAME'),
    'server_instance' => $_SERVER['SILVER_INSTANCE_NAME'],
    'config' => getenv('CONFIG_TEST'),
    'update' => $_SERVER['SILVERLINING_UPDATE'],
    'header' => isset($_SERVER['HTTP_X_TOPPCLOUD_INTERNAL']) ? 'visible' : 'hidden',
    'base' => $silver_base,
)) . "\n";
