"""An awk interpreter with busybox awk's rules: lexer and parser (`parse`), values (`value`), runtime (`run`)."""
