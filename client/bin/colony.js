#!/usr/bin/env node
// A committed entry, so npm can link the `colony` command at install time, before the build has run.
import '../dist/cli.js'
