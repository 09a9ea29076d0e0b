<?php
// A guestbook: GET lists the entries, POST text=... adds one; /setup
// (update_fetch) creates the table.
header('Content-Type: text/plain; charset=utf-8');
mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
$db = new mysqli(getenv('CONFIG_MYSQL_HOST'), getenv('CONFIG_MYSQL_USER'),
    getenv('CONFIG_MYSQL_PASSWORD'), getenv('CONFIG_MYSQL_DBNAME'), (int) getenv('CONFIG_MYSQL_PORT'));
$db->set_charset('utf8mb4');
$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH);
if (substr($path, -6) === '/setup') {
    $db->query('CREATE TABLE IF NOT EXISTS entries (id INT AUTO_INCREMENT PRIMARY KEY, text VARCHAR(200) NOT NULL)');
    echo "table ready\n";
    exit;
}
if ($_SERVER['REQUEST_METHOD'] === 'POST') {
    $st = $db->prepare('INSERT INTO entries (text) VALUES (?)');
    $text = (string) ($_POST['text'] ?? '');
    $st->bind_param('s', $text);
    $st->execute();
}
foreach ($db->query('SELECT text FROM entries ORDER BY id') as $row) {
    echo $row['text'], "\n";
}
