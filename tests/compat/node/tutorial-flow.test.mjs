// The tutorials' sign-in flow end to end with the unmodified amazon-cognito-identity-js: an
// administrator creates a user in group Admins; the user signs in with SRP, sets a new password,
// enrols a TOTP authenticator (codes by otplib), signs in again with SRP plus a TOTP code, gets
// tokens whose cognito:groups shows Admins (checked by aws-jwt-verify against the pool's JWKS),
// refreshes them, signs out globally, and the old refresh token no longer works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdminCreateUserCommand, CreateGroupCommand, AdminAddUserToGroupCommand, SetUserPoolMfaConfigCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { CognitoUserPool, CognitoUser, AuthenticationDetails } from 'amazon-cognito-identity-js';
import { authenticator } from 'otplib';
import { JwtRsaVerifier } from 'aws-jwt-verify';
import { poolFixture, unique, GOOD_PASSWORD } from './cognate-server.mjs';

const f = poolFixture('tutorial', async (admin, poolId) => {
  await f.admin.send(new SetUserPoolMfaConfigCommand({
    UserPoolId: f.poolId, MfaConfiguration: 'ON', SoftwareTokenMfaConfiguration: { Enabled: true },
  }));
  await f.admin.send(new CreateGroupCommand({ UserPoolId: f.poolId, GroupName: 'Admins', Precedence: 0 }));
});

/** The authenticator's code `stepsAhead` 30-second steps from now. */
function totp(secret, stepsAhead = 0) {
  return authenticator.clone({ epoch: Date.now() + stepsAhead * 30_000 }).generate(secret);
}

function cognitoUser(username) {
  const pool = new CognitoUserPool({ UserPoolId: f.poolId, ClientId: f.clientId, endpoint: `${f.server.endpoint}/` });
  return new CognitoUser({ Username: username, Pool: pool });
}

const failWith = (reject, what) => () => reject(new Error(`unexpected ${what}`));

test('admin-created user: new password, TOTP enrolment, SRP + TOTP sign-in, refresh, global sign-out', async () => {
  const username = unique('tut');
  await f.admin.send(new AdminCreateUserCommand({
    UserPoolId: f.poolId, Username: username, TemporaryPassword: 'Temp-Pass-123', MessageAction: 'SUPPRESS',
    UserAttributes: [{ Name: 'email', Value: `${username}@example.com` }, { Name: 'email_verified', Value: 'true' }],
  }));
  await f.admin.send(new AdminAddUserToGroupCommand({ UserPoolId: f.poolId, Username: username, GroupName: 'Admins' }));

  // 1. First sign-in: NEW_PASSWORD_REQUIRED, then (MFA required) MFA_SETUP with a TOTP enrolment.
  const first = cognitoUser(username);
  let secret;
  const enrolled = await new Promise((resolve, reject) => {
    first.authenticateUser(new AuthenticationDetails({ Username: username, Password: 'Temp-Pass-123' }), {
      onSuccess: failWith(reject, 'tokens before the new password'),
      onFailure: reject,
      newPasswordRequired: () => {
        first.completeNewPasswordChallenge(GOOD_PASSWORD, {}, {
          onSuccess: failWith(reject, 'tokens before MFA enrolment'),
          onFailure: reject,
          mfaSetup: (challengeName, params) => {
            assert.equal(challengeName, 'MFA_SETUP');
            assert.deepEqual(JSON.parse(params.MFAS_CAN_SETUP), ['SOFTWARE_TOKEN_MFA']);
            first.associateSoftwareToken({
              onFailure: reject,
              associateSecretCode: (code) => {
                secret = code;
                first.verifySoftwareToken(totp(secret), 'tutorial phone', { onSuccess: resolve, onFailure: reject });
              },
            });
          },
        });
      },
    });
  });
  assert.ok(enrolled.isValid());

  // 2. Second sign-in: SRP, then SOFTWARE_TOKEN_MFA answered with the next step's code (the
  //    enrolment used this step's, and each code works once).
  const second = cognitoUser(username);
  const session = await new Promise((resolve, reject) => {
    second.authenticateUser(new AuthenticationDetails({ Username: username, Password: GOOD_PASSWORD }), {
      onSuccess: failWith(reject, 'tokens without the TOTP code'),
      onFailure: reject,
      totpRequired: (challengeName) => {
        assert.equal(challengeName, 'SOFTWARE_TOKEN_MFA');
        second.sendMFACode(totp(secret, 1), { onSuccess: resolve, onFailure: reject }, 'SOFTWARE_TOKEN_MFA');
      },
    });
  });

  // The tokens verify with aws-jwt-verify's generic RS256 verifier against the pool's JWKS.
  const issuer = `${f.server.endpoint}/${f.poolId}`;
  const jwks = await (await fetch(`${issuer}/.well-known/jwks.json`)).json();
  const idVerifier = JwtRsaVerifier.create({ issuer, audience: f.clientId, jwksUri: `${issuer}/.well-known/jwks.json` });
  idVerifier.cacheJwks(jwks);
  const idClaims = await idVerifier.verify(session.getIdToken().getJwtToken());
  assert.deepEqual(idClaims['cognito:groups'], ['Admins']);
  assert.equal(idClaims.token_use, 'id');
  const accessVerifier = JwtRsaVerifier.create({
    issuer, audience: null, jwksUri: `${issuer}/.well-known/jwks.json`,
    customJwtCheck: ({ payload }) => assert.equal(payload.client_id, f.clientId),
  });
  accessVerifier.cacheJwks(jwks);
  const accessClaims = await accessVerifier.verify(session.getAccessToken().getJwtToken());
  assert.deepEqual(accessClaims['cognito:groups'], ['Admins']);
  assert.equal(accessClaims.token_use, 'access');

  // 3. Refresh: new ID and access tokens of the same sign-in.
  const oldRefresh = session.getRefreshToken();
  const refreshed = await new Promise((resolve, reject) => {
    second.refreshSession(oldRefresh, (err, s) => (err ? reject(err) : resolve(s)));
  });
  const refreshedId = refreshed.getIdToken().decodePayload();
  assert.deepEqual(refreshedId['cognito:groups'], ['Admins']);
  assert.equal(refreshedId.origin_jti, idClaims.origin_jti);
  assert.notEqual(refreshed.getAccessToken().getJwtToken(), session.getAccessToken().getJwtToken());

  // 4. Global sign-out; the old refresh token is dead. (The library retries a failed refresh
  //    with backoff for about six seconds before it reports the error, as against Cognito.)
  await new Promise((resolve, reject) => {
    second.globalSignOut({ onSuccess: resolve, onFailure: reject });
  });
  const afterSignOut = cognitoUser(username);
  await assert.rejects(
    new Promise((resolve, reject) => {
      afterSignOut.refreshSession(oldRefresh, (err, s) => (err ? reject(err) : resolve(s)));
    }),
    (err) => {
      assert.equal(err.code, 'NotAuthorizedException');
      return true;
    },
  );
});

test('a wrong TOTP code is CodeMismatchException and the same challenge can be answered again', async () => {
  const username = unique('tut');
  await f.admin.send(new AdminCreateUserCommand({
    UserPoolId: f.poolId, Username: username, TemporaryPassword: 'Temp-Pass-123', MessageAction: 'SUPPRESS',
  }));
  const user = cognitoUser(username);
  let secret;
  await new Promise((resolve, reject) => {
    user.authenticateUser(new AuthenticationDetails({ Username: username, Password: 'Temp-Pass-123' }), {
      onSuccess: failWith(reject, 'tokens'),
      onFailure: reject,
      newPasswordRequired: () => user.completeNewPasswordChallenge(GOOD_PASSWORD, {}, {
        onSuccess: failWith(reject, 'tokens'),
        onFailure: reject,
        mfaSetup: () => user.associateSoftwareToken({
          onFailure: reject,
          associateSecretCode: (code) => {
            secret = code;
            user.verifySoftwareToken(totp(secret), '', { onSuccess: resolve, onFailure: reject });
          },
        }),
      }),
    });
  });
  const again = cognitoUser(username);
  const outcome = await new Promise((resolve, reject) => {
    again.authenticateUser(new AuthenticationDetails({ Username: username, Password: GOOD_PASSWORD }), {
      onSuccess: failWith(reject, 'tokens'),
      onFailure: reject,
      totpRequired: () => {
        again.sendMFACode(totp(secret, -3), {
          onSuccess: failWith(reject, 'tokens for a wrong code'),
          onFailure: (err) => {
            assert.equal(err.code, 'CodeMismatchException');
            again.sendMFACode(totp(secret, 1), { onSuccess: resolve, onFailure: reject }, 'SOFTWARE_TOKEN_MFA');
          },
        }, 'SOFTWARE_TOKEN_MFA');
      },
    });
  });
  assert.equal(outcome.getAccessToken().decodePayload().username, username);
});
