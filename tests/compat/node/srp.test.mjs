// SRP sign-in with the unmodified amazon-cognito-identity-js (what Amplify uses), pointed at
// Cognate with its `endpoint` option; the pool and user are made with the AWS SDK v3.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdminCreateUserCommand, AdminSetUserPasswordCommand } from '@aws-sdk/client-cognito-identity-provider';
import {
  CognitoUserPool, CognitoUser, AuthenticationDetails,
} from 'amazon-cognito-identity-js';
import { poolFixture, unique, GOOD_PASSWORD } from './cognate-server.mjs';

const f = poolFixture('nodesrp');

function signIn(username, password, onNewPassword) {
  const pool = new CognitoUserPool({ UserPoolId: f.poolId, ClientId: f.clientId, endpoint: `${f.server.endpoint}/` });
  const user = new CognitoUser({ Username: username, Pool: pool });
  return new Promise((resolve, reject) => {
    user.authenticateUser(new AuthenticationDetails({ Username: username, Password: password }), {
      onSuccess: (session) => resolve(session),
      onFailure: (err) => reject(err),
      newPasswordRequired: (attrs, required) => {
        if (!onNewPassword) return reject(new Error('unexpected newPasswordRequired'));
        user.completeNewPasswordChallenge(onNewPassword, {}, {
          onSuccess: (session) => resolve(session),
          onFailure: (err) => reject(err),
        });
      },
    });
  });
}

test('authenticateUser signs in with SRP (the library default flow)', async () => {
  const username = unique('js');
  await f.admin.send(new AdminCreateUserCommand({ UserPoolId: f.poolId, Username: username, MessageAction: 'SUPPRESS' }));
  await f.admin.send(new AdminSetUserPasswordCommand({
    UserPoolId: f.poolId, Username: username, Password: GOOD_PASSWORD, Permanent: true,
  }));
  const session = await signIn(username, GOOD_PASSWORD);
  assert.equal(session.getAccessToken().decodePayload().username, username);
  assert.equal(session.getIdToken().decodePayload()['cognito:username'], username);
  assert.ok(session.getRefreshToken().getToken().length > 20);
});

test('a wrong password is NotAuthorizedException', async () => {
  const username = unique('js');
  await f.admin.send(new AdminCreateUserCommand({ UserPoolId: f.poolId, Username: username, MessageAction: 'SUPPRESS' }));
  await f.admin.send(new AdminSetUserPasswordCommand({
    UserPoolId: f.poolId, Username: username, Password: GOOD_PASSWORD, Permanent: true,
  }));
  await assert.rejects(signIn(username, 'Wrong-Password-7'), (err) => {
    assert.equal(err.code, 'NotAuthorizedException');
    return true;
  });
});

test('a temporary password leads through NEW_PASSWORD_REQUIRED to tokens', async () => {
  const username = unique('js');
  await f.admin.send(new AdminCreateUserCommand({
    UserPoolId: f.poolId, Username: username, TemporaryPassword: 'Temp-Pass-123', MessageAction: 'SUPPRESS',
  }));
  const session = await signIn(username, 'Temp-Pass-123', GOOD_PASSWORD);
  assert.ok(session.isValid());
  const again = await signIn(username, GOOD_PASSWORD);
  assert.equal(again.getAccessToken().decodePayload().username, username);
});
