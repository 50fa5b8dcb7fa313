<?php
// What PHP sees of a request, as JSON: the trust-boundary tests
// (integration/php_test.go) run this behind Caddy, as the router script of
// `php -S` and as the front controller of php-fpm behind php_fastcgi.
// Every call appends one line to calls.log next to this file, so that a
// test can tell whether PHP was reached at all.
ini_set('display_errors', '0');
error_reporting(0);

file_put_contents(__DIR__ . '/calls.log', rawurlencode($_SERVER['REQUEST_URI'] ?? '') . "\n", FILE_APPEND | LOCK_EX);

// Every header PHP exposes whose name starts with X-Mp or X-WX (PHP turns
// X-Mp-Openid and X_Mp_Openid alike into HTTP_X_MP_OPENID).
$mp = [];
foreach ($_SERVER as $k => $v) {
    $squashed = is_string($k) ? preg_replace('/[^A-Za-z0-9]/', '', $k) : '';
    if (strncasecmp($squashed, 'HTTPXMP', 7) === 0 || strncasecmp($squashed, 'HTTPXWX', 7) === 0) {
        $mp[$k] = $v;
    }
}

// Uploaded files: each part's name with its contents.
function mp_file_contents($tmp) {
    if (is_array($tmp)) {
        $out = [];
        foreach ($tmp as $k => $t) {
            $out[$k] = mp_file_contents($t);
        }
        return $out;
    }
    return is_string($tmp) && $tmp !== '' ? (string) file_get_contents($tmp) : '';
}
$files = [];
foreach ($_FILES as $name => $f) {
    $files[$name] = mp_file_contents($f['tmp_name'] ?? '');
}

$input = file_get_contents('php://input');
// The query of the original request's URI (php_fastcgi sends REQUEST_URI
// from the request before any rewrite) and the body read as a form, both
// the way PHP parses them.
$uri_query = [];
parse_str((string) parse_url($_SERVER['REQUEST_URI'] ?? '', PHP_URL_QUERY), $uri_query);
$input_form = [];
parse_str($input, $input_form);
header('Content-Type: application/json');
header('X-Php-Echo: 1');
echo json_encode([
    'php'          => true,
    'method'       => $_SERVER['REQUEST_METHOD'] ?? '',
    'request_uri'  => $_SERVER['REQUEST_URI'] ?? '',
    'query_string' => $_SERVER['QUERY_STRING'] ?? '',
    'script_name'  => $_SERVER['SCRIPT_NAME'] ?? '',
    'path_info'    => $_SERVER['PATH_INFO'] ?? '',
    'content_type' => $_SERVER['CONTENT_TYPE'] ?? '',
    'server_mp'    => (object) $mp,
    'get'          => (object) $_GET,
    'post'         => (object) $_POST,
    'request'      => (object) $_REQUEST,
    'files'        => (object) $files,
    'input'        => $input,
    'input_form'   => (object) $input_form,
    'uri_query'    => (object) $uri_query,
    'json'         => json_decode($input, true),
], JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE | JSON_PARTIAL_OUTPUT_ON_ERROR);
