// aws-amplify v6 `signIn` (SRP by default) pointed at Cognate through its `userPoolEndpoint`
// setting: a temporary password, the new-password step, TOTP setup inside the sign-in, a second
// sign-in with a TOTP code, the session's tokens, and a global sign-out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdminCreateUserCommand, SetUserPoolMfaConfigCommand, AdminGetUserCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { Amplify } from 'aws-amplify';
import { signIn, confirmSignIn, fetchAuthSession, signOut, getCurrentUser } from 'aws-amplify/auth';
import { authenticator } from 'otplib';
import { poolFixture, unique, GOOD_PASSWORD } from './cognate-server.mjs';

const f = poolFixture('amplify', (admin, poolId) => admin.send(new SetUserPoolMfaConfigCommand({
  UserPoolId: f.poolId, MfaConfiguration: 'ON', SoftwareTokenMfaConfiguration: { Enabled: true },
})));

function totp(secret, stepsAhead = 0) {
  return authenticator.clone({ epoch: Date.now() + stepsAhead * 30_000 }).generate(secret);
}

test('signIn: new password, TOTP setup, sign-in with a TOTP code, global sign-out', async () => {
  Amplify.configure({
    Auth: { Cognito: { userPoolId: f.poolId, userPoolClientId: f.clientId, userPoolEndpoint: f.server.endpoint } },
  });
  const username = unique('amp');
  await f.admin.send(new AdminCreateUserCommand({
    UserPoolId: f.poolId, Username: username, TemporaryPassword: 'Temp-Pass-123', MessageAction: 'SUPPRESS',
  }));

  const first = await signIn({ username, password: 'Temp-Pass-123' });
  assert.equal(first.isSignedIn, false);
  assert.equal(first.nextStep.signInStep, 'CONFIRM_SIGN_IN_WITH_NEW_PASSWORD_REQUIRED');
  const setup = await confirmSignIn({ challengeResponse: GOOD_PASSWORD });
  assert.equal(setup.nextStep.signInStep, 'CONTINUE_SIGN_IN_WITH_TOTP_SETUP');
  const secret = setup.nextStep.totpSetupDetails.sharedSecret;
  assert.match(secret, /^[A-Z2-7]{52}$/);
  const setupUri = setup.nextStep.totpSetupDetails.getSetupUri('Cognate', username).href;
  assert.ok(setupUri.startsWith('otpauth://totp/'), setupUri);
  const done = await confirmSignIn({ challengeResponse: totp(secret) });
  assert.equal(done.isSignedIn, true);
  assert.equal((await getCurrentUser()).username, username);
  const adminView = await f.admin.send(new AdminGetUserCommand({ UserPoolId: f.poolId, Username: username }));
  assert.deepEqual(adminView.UserMFASettingList, ['SOFTWARE_TOKEN_MFA']);
  await signOut();

  const second = await signIn({ username, password: GOOD_PASSWORD });
  assert.equal(second.nextStep.signInStep, 'CONFIRM_SIGN_IN_WITH_TOTP_CODE');
  const signedIn = await confirmSignIn({ challengeResponse: totp(secret, 1) });
  assert.equal(signedIn.isSignedIn, true);
  const { tokens } = await fetchAuthSession();
  assert.equal(tokens.accessToken.payload.username, username);
  assert.equal(tokens.idToken.payload['cognito:username'], username);

  await signOut({ global: true });
  await assert.rejects(getCurrentUser());
});
