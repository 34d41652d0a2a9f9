import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", "cdk.out/", "dist/", "jest.config.js"] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  // The pre-traffic hook and its tests run on Node.js (Lambda, node --test).
  {
    files: ["lib/hooks/**/*.mjs", "test/hooks/**/*.mjs"],
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        TextEncoder: "readonly",
        TextDecoder: "readonly",
      },
    },
  },
);
