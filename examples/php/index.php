<?php
// The front controller: every request that is not a file under php_root
// (or static/) comes here.
header('Content-Type: text/plain; charset=utf-8');
echo "Hello from PHP ", PHP_VERSION, "\n";
echo "instance: ", getenv('SILVER_INSTANCE_NAME'), "\n";
echo "path: ", $_SERVER['REQUEST_URI'] ?? '', "\n";
