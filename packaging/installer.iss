; Inno Setup script for MIA Elite (per-user install, no administrator rights needed).
; Build on Windows after PyInstaller:  iscc /DAppVersion=0.1.0 packaging\installer.iss
; Input:  dist\MIA Elite\   (the one-folder PyInstaller bundle)
; Output: dist\installer\MIA-Elite-Setup-<version>.exe
;
; The uninstaller removes the program folder only. The user's settings, journal, recordings
; and logs live in the user folders (%LOCALAPPDATA%\MIA\MIA Elite) and are kept unless the
; user ticks "Also delete my settings, journal and logs" on the uninstaller's question.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif

[Setup]
AppId={{0FC29CC4-B0E5-4F0B-B974-2921C9214DA5}
AppName=MIA Elite
AppVersion={#AppVersion}
AppPublisher=MIA
DefaultDirName={localappdata}\Programs\MIA Elite
DefaultGroupName=MIA Elite
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
OutputDir=..\dist\installer
OutputBaseFilename=MIA-Elite-Setup-{#AppVersion}
SetupIconFile=icons\mia-elite.ico
UninstallDisplayIcon={app}\MIA Elite.exe
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
CloseApplications=yes

[Files]
Source: "..\dist\MIA Elite\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\MIA Elite"; Filename: "{app}\MIA Elite.exe"
Name: "{group}\MIA Elite self-test"; Filename: "{app}\mia-elite.exe"; Parameters: "--self-test 20"
Name: "{group}\Uninstall MIA Elite"; Filename: "{uninstallexe}"
Name: "{userdesktop}\MIA Elite"; Filename: "{app}\MIA Elite.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

[Run]
; First run compiles the analyzers once (a splash screen shows the progress).
Filename: "{app}\MIA Elite.exe"; Description: "Start MIA Elite"; Flags: nowait postinstall skipifsilent

[Code]
var
  DeleteUserData: Boolean;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usUninstall then
    DeleteUserData := MsgBox('Also delete my settings, journal and logs?' #13#10 +
      '(Choose No to keep them for a later install.)', mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES;
  if (CurUninstallStep = usPostUninstall) and DeleteUserData then
    DelTree(ExpandConstant('{localappdata}\MIA\MIA Elite'), True, True, True);
end;
