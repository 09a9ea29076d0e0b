<?php
echo "page under php_root\n";
