/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  // The construct's own tests (test/), then the example adopter's tests of its
  // demo stack, which live beside that stack.
  roots: ["<rootDir>/test", "<rootDir>/../examples/items-api/infra"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.tsx?$": "ts-jest" },
  // The example adopter under ../examples has no node_modules of its own.
  modulePaths: ["<rootDir>/node_modules"],
  testTimeout: 120000,
};
