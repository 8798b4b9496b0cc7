// Happy path with the unmodified AWS SDK for JavaScript v3.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  CreateUserPoolCommand,
  CreateUserPoolClientCommand,
  DescribeUserPoolCommand,
  SignUpCommand,
  ConfirmSignUpCommand,
  AdminGetUserCommand,
  AdminCreateUserCommand,
  ListUsersCommand,
  DeleteUserPoolCommand,
  paginateListUsers,
} from '@aws-sdk/client-cognito-identity-provider';
import {
  startServer, makeClient, waitForMessages, unique, attrs, GOOD_PASSWORD, UUID_RE,
} from './cognate-server.mjs';

let server;
let client;
let poolId;
let clientId;

before(async () => {
  server = await startServer();
  client = makeClient(server.endpoint);
});

after(async () => {
  if (client && poolId) {
    try { await client.send(new DeleteUserPoolCommand({ UserPoolId: poolId })); } catch { /* best effort */ }
  }
  client?.destroy();
  await server?.stop();
});

test('CreateUserPool returns a pool with id, arn and Date timestamps', async () => {
  const name = unique('nodepool');
  const out = await client.send(new CreateUserPoolCommand({
    PoolName: name,
    AutoVerifiedAttributes: ['email'],
    Policies: { PasswordPolicy: { MinimumLength: 8, RequireUppercase: true, RequireLowercase: true, RequireNumbers: true, RequireSymbols: false } },
  }));
  assert.equal(out.$metadata.httpStatusCode, 200);
  assert.ok(out.$metadata.requestId, 'x-amzn-RequestId is surfaced as $metadata.requestId');
  const pool = out.UserPool;
  assert.match(pool.Id, /^us-east-1_[0-9a-zA-Z]+$/);
  assert.equal(pool.Name, name);
  assert.ok(pool.CreationDate instanceof Date);
  assert.ok(Math.abs(pool.CreationDate.getTime() - Date.now()) < 300_000);
  poolId = pool.Id;
  const desc = await client.send(new DescribeUserPoolCommand({ UserPoolId: poolId }));
  assert.equal(desc.UserPool.Id, poolId);
  assert.deepEqual(desc.UserPool.AutoVerifiedAttributes, ['email']);
});

test('CreateUserPoolClient without a secret', async () => {
  const out = await client.send(new CreateUserPoolClientCommand({ UserPoolId: poolId, ClientName: 'node-app' }));
  const c = out.UserPoolClient;
  assert.equal(c.UserPoolId, poolId);
  assert.equal(c.ClientName, 'node-app');
  assert.match(c.ClientId, /^[\w+]+$/);
  assert.equal(c.ClientSecret, undefined);
  clientId = c.ClientId;
});

test('SignUp -> outbox code -> ConfirmSignUp -> AdminGetUser is CONFIRMED', async () => {
  const username = unique('nodeuser');
  const email = `${username}@example.com`;
  const su = await client.send(new SignUpCommand({
    ClientId: clientId,
    Username: username,
    Password: GOOD_PASSWORD,
    UserAttributes: [{ Name: 'email', Value: email }],
  }));
  assert.equal(su.UserConfirmed, false);
  assert.match(su.UserSub, UUID_RE);
  assert.equal(su.CodeDeliveryDetails.DeliveryMedium, 'EMAIL');
  assert.equal(su.CodeDeliveryDetails.AttributeName, 'email');

  const before = await client.send(new AdminGetUserCommand({ UserPoolId: poolId, Username: username }));
  assert.equal(before.UserStatus, 'UNCONFIRMED');

  const msgs = await waitForMessages(server.endpoint, poolId, username, 'signup');
  assert.equal(msgs.length, 1);
  assert.equal(msgs[0].to, email);
  assert.equal(msgs[0].username, username);
  const code = msgs[0].code;
  assert.ok(typeof code === 'string' && code.length > 0);

  const conf = await client.send(new ConfirmSignUpCommand({ ClientId: clientId, Username: username, ConfirmationCode: code }));
  assert.equal(conf.$metadata.httpStatusCode, 200);

  const user = await client.send(new AdminGetUserCommand({ UserPoolId: poolId, Username: username }));
  assert.equal(user.Username, username);
  assert.equal(user.UserStatus, 'CONFIRMED');
  assert.equal(user.Enabled, true);
  assert.ok(user.UserCreateDate instanceof Date);
  assert.ok(user.UserLastModifiedDate instanceof Date);
  const a = attrs(user.UserAttributes);
  assert.equal(a.sub, su.UserSub);
  assert.equal(a.email, email);
  assert.equal(a.email_verified, 'true');
});

test('ListUsers with Filter, Limit and the SDK paginator', async () => {
  const tag = unique('lu');
  const names = [];
  for (let i = 0; i < 3; i++) {
    const username = `${tag}-${i}`;
    names.push(username);
    await client.send(new AdminCreateUserCommand({
      UserPoolId: poolId,
      Username: username,
      UserAttributes: [{ Name: 'email', Value: `${username}@example.org` }],
      MessageAction: 'SUPPRESS',
    }));
  }
  const filtered = await client.send(new ListUsersCommand({ UserPoolId: poolId, Filter: `email = "${tag}-1@example.org"` }));
  assert.deepEqual(filtered.Users.map((u) => u.Username), [`${tag}-1`]);
  assert.equal(filtered.Users[0].UserStatus, 'FORCE_CHANGE_PASSWORD');
  assert.ok(filtered.Users[0].UserCreateDate instanceof Date);

  const prefixed = await client.send(new ListUsersCommand({ UserPoolId: poolId, Filter: `username ^= "${tag}"` }));
  assert.deepEqual(prefixed.Users.map((u) => u.Username).sort(), names);

  const page = await client.send(new ListUsersCommand({ UserPoolId: poolId, Limit: 2 }));
  assert.ok(page.Users.length <= 2);
  assert.ok(page.PaginationToken, 'more users than the limit -> PaginationToken');

  const seen = [];
  for await (const p of paginateListUsers({ client, pageSize: 2 }, { UserPoolId: poolId })) {
    assert.ok(p.Users.length <= 2);
    seen.push(...p.Users.map((u) => u.Username));
  }
  assert.equal(new Set(seen).size, seen.length, 'no user returned twice');
  for (const n of names) assert.ok(seen.includes(n), `${n} listed`);
  assert.equal(seen.length, names.length + 1); // + the signed-up user from the previous test
});
