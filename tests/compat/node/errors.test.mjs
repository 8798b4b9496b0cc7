// Error mapping and authentication with the unmodified AWS SDK for JavaScript v3.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  CreateUserPoolCommand,
  CreateUserPoolClientCommand,
  AdminGetUserCommand,
  ListUserPoolsCommand,
  SignUpCommand,
  DeleteUserPoolCommand,
  CognitoIdentityProviderClient,
  ResendConfirmationCodeCommand,
  UserNotFoundException,
  UsernameExistsException,
  ResourceNotFoundException,
  CognitoIdentityProviderServiceException,
} from '@aws-sdk/client-cognito-identity-provider';
import {
  startServer, makeClient, makeUnsignedClient, unique, GOOD_PASSWORD, ACCESS_KEY_ID, REGION,
} from './cognate-server.mjs';

let server;
let client;
let poolId;

before(async () => {
  server = await startServer();
  client = makeClient(server.endpoint);
  poolId = (await client.send(new CreateUserPoolCommand({ PoolName: unique('nodeerr') }))).UserPool.Id;
});

after(async () => {
  if (client && poolId) {
    try { await client.send(new DeleteUserPoolCommand({ UserPoolId: poolId })); } catch { /* best effort */ }
  }
  client?.destroy();
  await server?.stop();
});

test('AdminGetUser for an unknown user is UserNotFoundException, HTTP 400', async () => {
  await assert.rejects(
    client.send(new AdminGetUserCommand({ UserPoolId: poolId, Username: unique('ghost') })),
    (err) => {
      assert.equal(err.name, 'UserNotFoundException');
      assert.ok(err instanceof UserNotFoundException);
      assert.ok(err instanceof CognitoIdentityProviderServiceException);
      assert.equal(err.$metadata.httpStatusCode, 400);
      assert.equal(err.$fault, 'client');
      assert.ok(err.$metadata.requestId, 'request id from x-amzn-RequestId');
      assert.ok(typeof err.message === 'string' && err.message.length > 0);
      return true;
    },
  );
});

test('unknown pool is ResourceNotFoundException', async () => {
  await assert.rejects(
    client.send(new AdminGetUserCommand({ UserPoolId: 'us-east-1_NoSuchPoolNode', Username: 'x' })),
    (err) => {
      assert.equal(err.name, 'ResourceNotFoundException');
      assert.ok(err instanceof ResourceNotFoundException);
      assert.equal(err.$metadata.httpStatusCode, 400);
      return true;
    },
  );
});

test('duplicate SignUp is UsernameExistsException', async () => {
  const { UserPoolClient } = await client.send(new CreateUserPoolClientCommand({ UserPoolId: poolId, ClientName: 'dup' }));
  const username = unique('dup');
  await client.send(new SignUpCommand({ ClientId: UserPoolClient.ClientId, Username: username, Password: GOOD_PASSWORD }));
  await assert.rejects(
    client.send(new SignUpCommand({ ClientId: UserPoolClient.ClientId, Username: username, Password: GOOD_PASSWORD })),
    (err) => {
      assert.equal(err.name, 'UsernameExistsException');
      assert.ok(err instanceof UsernameExistsException);
      assert.equal(err.$metadata.httpStatusCode, 400);
      return true;
    },
  );
});

test('an unsigned admin call fails with MissingAuthenticationTokenException', async () => {
  const unsigned = makeUnsignedClient(server.endpoint);
  try {
    await assert.rejects(unsigned.send(new ListUserPoolsCommand({ MaxResults: 5 })), (err) => {
      assert.equal(err.name, 'MissingAuthenticationTokenException');
      assert.ok([400, 403].includes(err.$metadata.httpStatusCode), String(err.$metadata.httpStatusCode));
      return true;
    });
    // the same client can still make public (unsigned) calls
    const { UserPoolClient } = await client.send(new CreateUserPoolClientCommand({ UserPoolId: poolId, ClientName: 'pub' }));
    const out = await unsigned.send(new SignUpCommand({ ClientId: UserPoolClient.ClientId, Username: unique('pub'), Password: GOOD_PASSWORD }));
    assert.equal(out.UserConfirmed, false);
  } finally {
    unsigned.destroy();
  }
});

test('wrong secret key is InvalidSignatureException', async () => {
  const bad = makeClient(server.endpoint, { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'not-the-secret' });
  try {
    await assert.rejects(bad.send(new ListUserPoolsCommand({ MaxResults: 5 })), (err) => {
      assert.equal(err.name, 'InvalidSignatureException');
      assert.equal(err.$metadata.httpStatusCode, 400);
      return true;
    });
  } finally {
    bad.destroy();
  }
});

test('unknown access key is UnrecognizedClientException', async () => {
  const bad = makeClient(server.endpoint, { accessKeyId: 'AKIDNOSUCHKEY0000000', secretAccessKey: 'whatever' });
  try {
    await assert.rejects(bad.send(new ListUserPoolsCommand({ MaxResults: 5 })), (err) => {
      assert.equal(err.name, 'UnrecognizedClientException');
      assert.equal(err.$metadata.httpStatusCode, 400);
      return true;
    });
  } finally {
    bad.destroy();
  }
});

test('public actions need no credentials at all (browser-style client)', async () => {
  const anon = new CognitoIdentityProviderClient({
    region: REGION,
    endpoint: server.endpoint,
    maxAttempts: 1,
    credentials: async () => { throw new Error('credentials must not be needed for SignUp'); },
  });
  try {
    const { UserPoolClient } = await client.send(new CreateUserPoolClientCommand({ UserPoolId: poolId, ClientName: 'anon' }));
    const username = unique('anon');
    const out = await anon.send(new SignUpCommand({ ClientId: UserPoolClient.ClientId, Username: username, Password: GOOD_PASSWORD }));
    assert.equal(out.UserConfirmed, false);
    // and an admin action from that client fails locally for want of credentials
    await assert.rejects(anon.send(new ListUserPoolsCommand({ MaxResults: 1 })), /credentials must not be needed/);
    // ResendConfirmationCode for an unknown user reaches the service (HTTP 400), not an SDK credential error
    await assert.rejects(anon.send(new ResendConfirmationCodeCommand({ ClientId: UserPoolClient.ClientId, Username: unique('ghost') })), (err) => {
      assert.ok(err.$metadata && err.$metadata.httpStatusCode === 400, String(err));
      return true;
    });
  } finally {
    anon.destroy();
  }
});
