import { defineConfig } from '@playwright/test'

// Debian's chromium, no browser download. Run through run-browser-tests.sh, inside a private
// network namespace, so tabs get a routable address for WebRTC and no packet leaves the machine.
export default defineConfig({
  testDir: './browser',
  timeout: 180_000,
  workers: 1,
  reporter: [['list']],
  outputDir: '../test-results/browser',
  use: {
    headless: true,
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    },
  },
})
