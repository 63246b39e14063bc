;; The contract suite's second good system: another host name and a motd.
(use-modules (gnu) (forum test-base))
(use-service-modules base)

(operating-system
  (host-name "contract-second")
  (timezone "Etc/UTC")
  (bootloader (bootloader-configuration
                (bootloader grub-bootloader)
                (targets '("/dev/vda"))))
  (file-systems (cons (file-system
                        (mount-point "/")
                        (device (file-system-label "root"))
                        (type "ext4"))
                      %base-file-systems))
  (services (modify-services %base-services
              (login-service-type config =>
                (login-configuration
                  (inherit config)
                  (motd (plain-file "motd" %test-motd)))))))
