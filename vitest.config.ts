import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/scratch-tmpdir.ts"],
    // Integration tests start local servers (dynalite, fauxqs, a Kubernetes API); give them room on 2 cores. The
    // longest (differential runs against dynalite) take up to 18 s with a fork per core, twice that on a busy
    // machine: a timeout is for a test that hangs, not one that is slow.
    testTimeout: 90_000,
    hookTimeout: 60_000,
    pool: "forks",
    // One fork per core. Vitest's default leaves one core to its main process, which only reports: on the
    // 2-core machines the suite runs on, that was one file at a time, about 8 minutes instead of 5.5.
    maxWorkers: "100%",
    // CI also writes a JSON report, from which .ci/run prints the plain "N passed, N failed" line.
    reporters: process.env.CI ? ["default", ["json", { outputFile: ".vitest-report.json" }]] : ["default"],
    env: {
      // Nothing in the suite may reach a real AWS endpoint: fake credentials, fixed region.
      AWS_ACCESS_KEY_ID: "AKIDTESTTESTTEST",
      AWS_SECRET_ACCESS_KEY: "test-secret",
      AWS_REGION: "eu-west-1",
      AWS_EC2_METADATA_DISABLED: "true",
    },
  },
});
