// A tiny JSch 0.1.x client for tests/jsch.rs, standing in for the Java SIS
// extract tools districts run. It uses JSch's default algorithm lists (as
// those tools do), verifies the host key against a known_hosts file
// (StrictHostKeyChecking=yes), logs in with one private key, then runs SFTP
// commands read from stdin, one per line:
//
//   put LOCAL REMOTE | get REMOTE LOCAL | ls REMOTE | rename FROM TO | rm REMOTE
//
// Output on stdout, for the test to parse:
//   CONNECTED ...                  after the SSH login
//   NEGOTIATED key=value ...       what JSch negotiated
//   > COMMAND                      before each command
//   ENTRY NAME SIZE file|dir       per `ls` entry
//   OK COMMAND                     the command succeeded
//   SFTP_ERROR COMMAND id=N message=...   the server refused it (id: SSH_FX_*)
//   CONNECT_FAILED ExceptionClass: message   (exit status 2)
// JSch's own log (INFO and above) goes to stderr.
//
// Usage: java -cp OUT:jsch.jar FerryJschClient HOST PORT USER KEY KNOWN_HOSTS

import com.jcraft.jsch.ChannelSftp;
import com.jcraft.jsch.JSch;
import com.jcraft.jsch.JSchException;
import com.jcraft.jsch.Logger;
import com.jcraft.jsch.Session;
import com.jcraft.jsch.SftpException;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Vector;

public class FerryJschClient {
    private static final int TIMEOUT_MS = 20000;
    // The first KEXINIT's proposals, as JSch logs them ("kex: server: ..."
    // then "kex: client: ...", ten lists each, in RFC 4253 order).
    private static final List<String> SERVER_PROPOSAL = new ArrayList<>();
    private static final List<String> CLIENT_PROPOSAL = new ArrayList<>();

    private static final class StderrLogger implements Logger {
        @Override
        public boolean isEnabled(int level) {
            return level >= Logger.INFO;
        }

        @Override
        public synchronized void log(int level, String message) {
            String name;
            switch (level) {
                case Logger.DEBUG: name = "DEBUG"; break;
                case Logger.INFO: name = "INFO"; break;
                case Logger.WARN: name = "WARN"; break;
                case Logger.ERROR: name = "ERROR"; break;
                default: name = "FATAL"; break;
            }
            System.err.println("jsch " + name + ": " + message);
            if (message.startsWith("kex: server: ") && SERVER_PROPOSAL.size() < 10) {
                SERVER_PROPOSAL.add(message.substring("kex: server: ".length()));
            } else if (message.startsWith("kex: client: ") && CLIENT_PROPOSAL.size() < 10) {
                CLIENT_PROPOSAL.add(message.substring("kex: client: ".length()));
            }
        }
    }

    /** The first client algorithm the server also lists (RFC 4253 7.1). */
    private static synchronized String agreed(int index) {
        if (SERVER_PROPOSAL.size() <= index || CLIENT_PROPOSAL.size() <= index) {
            return "?";
        }
        List<String> server = Arrays.asList(SERVER_PROPOSAL.get(index).split(","));
        for (String alg : CLIENT_PROPOSAL.get(index).split(",")) {
            if (server.contains(alg)) {
                return alg;
            }
        }
        return "none-in-common";
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: FerryJschClient HOST PORT USER KEY KNOWN_HOSTS");
            System.exit(64);
        }
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        String user = args[2];
        String key = args[3];
        String knownHosts = args[4];

        JSch.setLogger(new StderrLogger());
        JSch jsch = new JSch();
        jsch.setKnownHosts(knownHosts);
        jsch.addIdentity(key);

        Session session = jsch.getSession(user, host, port);
        session.setConfig("StrictHostKeyChecking", "yes");
        session.setTimeout(TIMEOUT_MS);
        try {
            session.connect(TIMEOUT_MS);
        } catch (JSchException e) {
            System.out.println("CONNECT_FAILED " + e.getClass().getName() + ": " + e.getMessage());
            System.out.flush();
            System.exit(2);
        }
        System.out.println("CONNECTED server_version=" + session.getServerVersion()
                + " client_version=" + session.getClientVersion());
        System.out.println("NEGOTIATED kex=" + agreed(0)
                + " host_key=" + agreed(1)
                + " host_key_type=" + session.getHostKey().getType()
                + " cipher_c2s=" + agreed(2) + " cipher_s2c=" + agreed(3)
                + " mac_c2s=" + agreed(4) + " mac_s2c=" + agreed(5)
                + " compression=" + agreed(6));

        ChannelSftp sftp = (ChannelSftp) session.openChannel("sftp");
        sftp.connect(TIMEOUT_MS);
        System.out.println("SFTP server_version=" + sftp.getServerVersion());

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        int status = 0;
        String line;
        while ((line = in.readLine()) != null) {
            line = line.trim();
            if (line.isEmpty()) {
                continue;
            }
            String[] w = line.split("\\s+");
            System.out.println("> " + line);
            try {
                run(sftp, w);
                System.out.println("OK " + w[0]);
            } catch (SftpException e) {
                System.out.println("SFTP_ERROR " + w[0] + " id=" + e.id + " message=" + e.getMessage());
            } catch (IllegalArgumentException e) {
                System.out.println("BAD_COMMAND " + e.getMessage());
                status = 1;
            }
        }
        sftp.disconnect();
        session.disconnect();
        System.out.flush();
        System.exit(status);
    }

    @SuppressWarnings("unchecked")
    private static void run(ChannelSftp sftp, String[] w) throws SftpException {
        switch (w[0] + "/" + w.length) {
            case "put/3":
                sftp.put(w[1], w[2]);
                break;
            case "get/3":
                sftp.get(w[1], w[2]);
                break;
            case "ls/2":
                for (ChannelSftp.LsEntry e : (Vector<ChannelSftp.LsEntry>) sftp.ls(w[1])) {
                    System.out.println("ENTRY " + e.getFilename() + " " + e.getAttrs().getSize() + " "
                            + (e.getAttrs().isDir() ? "dir" : "file"));
                }
                break;
            case "rename/3":
                sftp.rename(w[1], w[2]);
                break;
            case "rm/2":
                sftp.rm(w[1]);
                break;
            default:
                throw new IllegalArgumentException(String.join(" ", w));
        }
    }
}
