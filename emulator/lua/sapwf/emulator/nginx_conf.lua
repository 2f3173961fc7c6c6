-- nginx.conf of the emulator: nginx with its Lua module in a prefix directory of its own,
-- listening on 127.0.0.1 only: plain HTTP, HTTPS, and HTTPS with client certificates
-- (mTLS: tokens for x509 clients). Every location hands the request to the server modules
-- (emulator/lua/sapwf/emulator/server), found through lua_package_path.
local format, tostring = string.format, tostring

local nginx_conf = {}

local MAIN = [[
load_module %s/ndk_http_module.so;
load_module %s/ngx_http_lua_module.so;
%s
worker_processes %d;
error_log %s/logs/error.log %s;
pid %s/logs/nginx.pid;

events { worker_connections 4096; }

http {
  access_log off;
  server_tokens off;
  absolute_redirect off;          # Location: /workflow-service/rest/v1/jobs/<id>, as SAP sends
  client_body_temp_path %s/tmp/body;
  proxy_temp_path %s/tmp/proxy;
  fastcgi_temp_path %s/tmp/fastcgi;
  uwsgi_temp_path %s/tmp/uwsgi;
  scgi_temp_path %s/tmp/scgi;
  client_body_buffer_size 1m;
  client_max_body_size 64m;
  large_client_header_buffers 4 32k;   # XSUAA-sized tokens in Authorization
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  lua_socket_log_errors off;
  lua_package_path "%s?.lua;%s?/init.lua;;";
  lua_shared_dict sapwf_emulator 16m;
  lua_shared_dict sapwf_emulator_keys %dk;   # the values of count_key (server/limits.lua)
  init_by_lua_block { require("sapwf.emulator.server").init({ max_instances = %d, spa = %s }) }
  init_worker_by_lua_block { require("sapwf.emulator.server").init_worker() }
  log_by_lua_block { require("sapwf.emulator.server").log() }

  server {
    listen 127.0.0.1:%d%s;
    location / { content_by_lua_block { require("sapwf.emulator.server").handle("http") } }
  }
%s}
]]

local TLS = [[
  ssl_certificate %s;
  ssl_certificate_key %s;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:sapwf_tls:1m;

  server {
    listen 127.0.0.1:%d ssl%s%s;
    location / { content_by_lua_block { require("sapwf.emulator.server").handle("https") } }
  }

  server {
    listen 127.0.0.1:%d ssl%s;
    ssl_client_certificate %s;
    ssl_verify_client on;
    # no or a bad client certificate: answer like XSUAA (401), not with nginx's 400 page
    error_page 495 496 = @no_certificate;
    location / { content_by_lua_block { require("sapwf.emulator.server").handle("mtls") } }
    location @no_certificate {
      content_by_lua_block { require("sapwf.emulator.server").handle("mtls") }
    }
  }
]]

--- The text of nginx.conf. s: dir, lua_root (ends with "/"), modules_dir, as_root, workers,
-- log_level, max_instances, spa, key_memory (kilobytes), http_port, and with TLS certs (from
-- certs.make), https_port, mtls_port and http2 (the HTTPS listener offers HTTP/2 by ALPN).
function nginx_conf.render(s)
  -- With several workers each gets a listening socket of its own (SO_REUSEPORT), and the
  -- kernel spreads connections over them by address hash. Without it one worker may take
  -- every connection of a short burst, and what is shared between workers (the rate
  -- limit's bucket, the counters) would go untested and unmeasured.
  local reuseport = s.workers > 1 and " reuseport" or ""
  local tls = ""
  if s.certs then
    tls = format(TLS, s.certs.server_cert_file, s.certs.server_key_file, s.https_port,
      s.http2 and " http2" or "", reuseport, s.mtls_port, reuseport, s.certs.ca_file)
  end
  -- as root, workers would run as nobody, who may not read the repository's files
  local user = s.as_root and "user root;" or ""
  local dir = s.dir
  return format(MAIN, s.modules_dir, s.modules_dir, user, s.workers, dir, s.log_level, dir,
    dir, dir, dir, dir, dir, s.lua_root, s.lua_root, s.key_memory, s.max_instances,
    tostring(s.spa == true), s.http_port, reuseport, tls)
end

return nginx_conf
