#!/usr/bin/env node
// Entry point of the `berth` command: the compiled CLI lives in dist/ (built by `npm install`).
import '../dist/cli/main.js'
