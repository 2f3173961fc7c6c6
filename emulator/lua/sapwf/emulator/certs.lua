-- The emulator's certificates, made with the openssl command line once per start (EC P-256
-- keys: fast): a CA, a server certificate for 127.0.0.1 and localhost signed by it, an x509
-- client certificate (CN = the x509 client id) signed by it, and an unrelated second CA.
local shell = require "sapwf.emulator.shell"
local defaults = require "sapwf.emulator.defaults"

local certs = {}

local SCRIPT = [[
set -e
cd %s
key() { openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "$@"; }
ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -keyout "$1.key" -out "$1.pem" -subj "/CN=$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
sign() {
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -set_serial "0x$2" -days 30 \
    -out "$1.pem" -extfile "$1.ext"
}
ca ca 'sapwf emulator CA'
ca wrong-ca 'unrelated CA'
key -keyout server.key -out server.csr -subj '/CN=localhost'
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > server.ext
printf 'extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >> server.ext
sign server %s
key -keyout client.key -out client.csr -subj %s
printf 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' > client.ext
sign client %s
rm -f server.csr client.csr server.ext client.ext wrong-ca.key
]]

--- Makes them in dir (which exists). Returns the file names, or nil and openssl's output.
function certs.make(dir)
  local subject = "/CN=" .. defaults.x509_clientid .. "/O=sapwf emulator"
  local script = string.format(SCRIPT, shell.quote(dir), shell.random_hex(8),
    shell.quote(subject), shell.random_hex(8))
  shell.write_file(dir .. "/make.sh", script)
  if not shell.run("sh " .. shell.quote(dir .. "/make.sh") .. " >" .. shell.quote(dir
      .. "/make.log") .. " 2>&1") then
    return nil, "openssl failed: " .. (shell.read_file(dir .. "/make.log") or "")
  end
  return {
    dir = dir,
    ca_file = dir .. "/ca.pem",
    wrong_ca_file = dir .. "/wrong-ca.pem",
    server_cert_file = dir .. "/server.pem",
    server_key_file = dir .. "/server.key",
    client_cert_file = dir .. "/client.pem",
    client_key_file = dir .. "/client.key",
  }
end

return certs
