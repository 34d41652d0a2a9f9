// The equivalent Node authorizer, for the cold-start comparison: the Lambda
// Runtime API loop written out by hand (no framework), aws-jwt-verify for the
// JWT, the same allow-everything-permitted style of response.
import { readFileSync } from "node:fs";
import { CognitoJwtVerifier } from "aws-jwt-verify";

const api = `http://${process.env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation`;
const verifier = CognitoJwtVerifier.create({
  userPoolId: process.env.COGNITO_USER_POOL_ID,
  clientId: process.env.COGNITO_CLIENT_IDS,
  tokenUse: "access",
});
// Same starting point as the Rust binary, which fetches the JWKS once from the
// stub: here it is read once from the file the stub serves.
verifier.cacheJwks(JSON.parse(readFileSync(process.env.JWKS_FILE, "utf8")));

for (;;) {
  const next = await fetch(`${api}/next`);
  const id = next.headers.get("lambda-runtime-aws-request-id");
  const event = await next.json();
  let body;
  try {
    const token = (event.headers.Authorization || "").replace(/^Bearer /i, "");
    const claims = await verifier.verify(token);
    const prefix = event.methodArn.split("/").slice(0, 2).join("/");
    body = {
      principalId: claims.sub,
      policyDocument: { Version: "2012-10-17", Statement: [{ Action: "execute-api:Invoke", Effect: "Allow", Resource: [`${prefix}/*`] }] },
      context: { sub: claims.sub, authMethod: "jwt" },
    };
    await fetch(`${api}/${id}/response`, { method: "POST", body: JSON.stringify(body) });
  } catch {
    await fetch(`${api}/${id}/error`, { method: "POST", body: JSON.stringify({ errorMessage: "Unauthorized" }) });
  }
}
