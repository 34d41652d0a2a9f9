import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", "cdk.out/", "dist/", "jest.config.js"] },
  js.configs.recommended,
  ...tseslint.configs.strict,
);
